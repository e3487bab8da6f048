"""Forecasters and their heads: autoregressive decoding with state equals teacher forcing on its
own predictions, channel independence, RevIN's scale equivariance, DLinear's decomposition, and
the heads' quantiles, rescaling and CRPS."""
import pytest
import torch
from scipy.special import stdtrit

from apps.timeseries.models import build_model
from apps.timeseries.models.config import ForecastConfig
from apps.timeseries.models.dlinear import moving_average
from apps.timeseries.models.heads import QuantileHead, StudentTHead, build_head, pinball

MIXERS = ["attention", "mamba", "gla", "mlstm"]


def tiny(**kw) -> ForecastConfig:
    backbone = {"d_model": 32, "n_layers": 2, "n_heads": 2, "max_len": 64, "dropout": 0.0,
                "mixer": kw.pop("mixer", "attention")}
    return ForecastConfig(**{"lookback": 64, "horizon": 20, "channels_in": 2, "patch": 8, "stride": 4,
                             "backbone": backbone, **kw})


@pytest.mark.parametrize("head", ["point", "student_t"])
@pytest.mark.parametrize("mixer", MIXERS)
def test_autoregressive_decoding_equals_teacher_forcing_on_its_own_output(mixer, head):
    torch.manual_seed(0)
    cfg = tiny(mixer=mixer, decoding="autoregressive", head=head)
    h = build_head(head)
    model = build_model(cfg, h.size).eval()
    past = torch.randn(3, 64, 2).cumsum(1)
    with torch.no_grad():
        free = model(past, h)  # patch by patch, recurrent state, own predictions fed back
        forced = model(past, h, future=h.point(free))  # one causal pass over the same inputs
    assert free.shape == (3, 20, 2, h.size)
    assert torch.allclose(free, forced, atol=1e-4), float((free - forced).abs().max())


@pytest.mark.parametrize("decoding", ["direct", "autoregressive"])
def test_channels_are_independent_and_share_weights(decoding):
    torch.manual_seed(0)
    h = build_head("point")
    model = build_model(tiny(decoding=decoding), h.size).eval()
    past = torch.randn(2, 64, 2)
    other = past.clone()
    other[:, :, 1] = torch.randn(2, 64)  # change channel 1 only
    with torch.no_grad():
        a, b, swapped = model(past, h), model(other, h), model(past.flip(-1), h)
    assert torch.allclose(a[:, :, 0], b[:, :, 0], atol=1e-6) and not torch.allclose(a[:, :, 1], b[:, :, 1])
    assert torch.allclose(swapped, a.flip(2), atol=1e-5)


@pytest.mark.parametrize("head", ["point", "quantile", "student_t"])
def test_revin_makes_forecasts_follow_the_input_scale(head):
    torch.manual_seed(0)
    h = build_head(head)
    model = build_model(tiny(head=head), h.size).eval()
    past = torch.randn(2, 64, 2)
    levels = torch.tensor([0.1, 0.5, 0.9])
    with torch.no_grad():
        base, moved = h.quantiles(model(past, h), levels), h.quantiles(model(past * 50 + 1000, h), levels)
    assert torch.allclose(moved, base * 50 + 1000, rtol=1e-4, atol=1e-2)


def test_moving_average_matches_a_loop():
    x = torch.randn(2, 30, 3)
    got = moving_average(x, 5)
    padded = torch.cat([x[:, :1].expand(-1, 2, -1), x, x[:, -1:].expand(-1, 2, -1)], 1)
    want = torch.stack([padded[:, t:t + 5].mean(1) for t in range(30)], 1)
    assert torch.allclose(got, want, atol=1e-6)
    even = moving_average(x, 4)
    assert even.shape == x.shape


def test_dlinear_is_linear_in_its_input():
    torch.manual_seed(0)
    h = build_head("point")
    for individual in (False, True):
        model = build_model(tiny(model="dlinear", individual=individual), h.size)
        a, b = torch.randn(2, 64, 2), torch.randn(2, 64, 2)
        zero = model(torch.zeros(2, 64, 2), h)
        assert torch.allclose(model(a + b, h) - zero, (model(a, h) - zero) + (model(b, h) - zero), atol=1e-5)


def test_heads_quantiles_rescaling_and_crps():
    torch.manual_seed(0)
    q = QuantileHead((0.1, 0.5, 0.9))
    raw = torch.tensor([[3.0, 1.0, 2.0]])  # unsorted on purpose: quantiles never cross
    assert torch.allclose(q.quantiles(raw, torch.tensor([0.1, 0.3, 0.5, 0.9])), torch.tensor([[1.0, 1.5, 2.0, 3.0]]))
    assert float(q.point(raw)) == pytest.approx(2.0)
    sharp = torch.full((4, 3), 5.0)
    assert float(q.crps(sharp, torch.full((4,), 5.0))) == pytest.approx(0.0, abs=1e-7)
    assert float(pinball(torch.tensor([[1.0]]), torch.tensor([3.0]), torch.tensor([0.9]))) == pytest.approx(1.8)

    t = StudentTHead()
    raw = torch.randn(5, 3)
    loc, scale, df = t.params(raw)
    want = torch.from_numpy(stdtrit(df.double().numpy()[:, None], [0.1, 0.5, 0.9])) * scale[:, None].double() + loc[:, None].double()
    assert torch.allclose(t.quantiles(raw, torch.tensor([0.1, 0.5, 0.9])).double(), want, atol=1e-5)
    for head in (build_head("point"), q, t):
        raw = torch.randn(6, head.size)
        shift, factor = torch.tensor(3.0), torch.tensor(2.5)
        levels = torch.tensor([0.2, 0.5, 0.8])
        moved = head.quantiles(head.rescale(raw, shift, factor), levels)
        assert torch.allclose(moved, head.quantiles(raw, levels) * factor + shift, atol=1e-4)
    y = torch.randn(6)
    point = build_head("point")
    assert float(point.crps(y[:, None] + 1, y)) == pytest.approx(1.0)
    # a wide Student-t scores worse CRPS than a sharp one centred on the truth
    centred = torch.stack([y, torch.full_like(y, -3.0), torch.full_like(y, 5.0)], -1)
    wide = torch.stack([y, torch.full_like(y, 3.0), torch.full_like(y, 5.0)], -1)
    assert float(t.crps(centred, y)) < float(t.crps(wide, y))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="model must be one of"):
        ForecastConfig(model="prophet")
    with pytest.raises(ValueError, match="longer than the lookback"):
        ForecastConfig(lookback=8, patch=16)
    with pytest.raises(ValueError, match="unknown output head"):
        build_head("gaussian")


@pytest.mark.parametrize("causal", [False, True])
def test_prob_sparse_attention_is_full_attention_when_every_query_is_active(causal):
    import torch.nn.functional as F

    from apps.timeseries.models.informer import prob_sparse_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 12, 8) for _ in range(3))
    full = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(prob_sparse_attention(q, k, v, factor=100, causal=causal, training=False), full, atol=1e-5)
    sparse = prob_sparse_attention(q, k, v, factor=1, causal=causal, training=False)  # u = ceil(ln 13) = 3 queries
    exact = torch.isclose(sparse, full, atol=1e-5).all(-1)
    lazy = torch.isclose(sparse, (v.cumsum(2) / torch.arange(1, 13)[:, None]) if causal else
                         v.mean(2, keepdim=True).expand_as(v), atol=1e-5).all(-1)
    assert (exact.sum(-1) >= 3).all() and (exact | lazy).all()  # active queries exact, the rest the (running) mean
    assert torch.equal(sparse, prob_sparse_attention(q, k, v, factor=1, causal=causal, training=False))


def test_informer_reads_calendar_features_and_writes_the_horizon_at_once():
    torch.manual_seed(0)
    cfg = tiny(model="informer", lookback=96, horizon=24, label_len=48, channels_in=3, time_features=4)
    h = build_head("quantile")
    model = build_model(cfg, h.size).eval()
    past, times = torch.randn(2, 96, 3), torch.randn(2, 96, 4)
    with torch.no_grad():
        a = model(past, h, past_time=times, future_time=torch.zeros(2, 24, 4))
        b = model(past, h, past_time=times, future_time=torch.ones(2, 24, 4))
    assert a.shape == (2, 24, 3, 3) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="calendar features"):
        model(past, h)
    with pytest.raises(ValueError, match="label_len"):
        tiny(model="informer", lookback=32, label_len=48)
