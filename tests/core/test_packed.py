"""MKL-packed linears for decoding: same outputs as F.linear, never stale, never in autograd."""
import torch
from torch import nn

from core.nn.packed import can_pack, packed_linears


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8, bias=False))


def test_packed_linears_give_the_same_outputs_and_repack_after_an_update():
    model = small_model()
    assert all(can_pack(m) for m in model if isinstance(m, nn.Linear))
    x = torch.randn(5, 3, 16)
    with torch.no_grad():
        want = model(x)
        with packed_linears(model):
            assert "forward" in model[0].__dict__  # (the packed forward is in place)
            got = model(x)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
            model[2].weight.mul_(2.0)  # an in-place update: the packed copy is stale now
            torch.testing.assert_close(model(x), 2 * want, rtol=1e-5, atol=1e-6)
    assert not any("forward" in m.__dict__ for m in model)  # restored on exit


def test_autograd_and_other_dtypes_take_f_linear():
    model = small_model()
    x = torch.randn(4, 16, requires_grad=True)
    with packed_linears(model):
        model(x).sum().backward()  # (a packed op has no backward: this would raise)
        assert x.grad is not None and model[0].weight.grad is not None
        with torch.no_grad():
            y = model.to(torch.float64)(x.double())
    assert y.dtype == torch.float64 and not can_pack(model[0])


def test_bfloat16_weights_pack_through_onednn_where_the_cpu_has_bf16():
    """Packed where oneDNN has bf16 kernels (checked, not assumed: the test runs on any CPU); either way
    the outputs are F.linear's in bf16, for [B, T, d] and [N, d] inputs alike, and repacked after a change."""
    model = small_model().to(torch.bfloat16)
    supported = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert can_pack(model[0]) is supported
    x = torch.randn(5, 3, 16).bfloat16()
    with torch.no_grad():
        want = model(x)
        with packed_linears(model):
            torch.testing.assert_close(model(x), want, rtol=1.6e-2, atol=1e-2)
            torch.testing.assert_close(model(x[:, 0]), want[:, 0], rtol=1.6e-2, atol=1e-2)
            model[0].weight.mul_(-1.0)
            flipped = model(x)
            assert ("_packed" in model[0].__dict__) is supported
        torch.testing.assert_close(flipped, model(x), rtol=1.6e-2, atol=1e-2)  # the new weights, not a stale copy
        assert (flipped - want).abs().max() > 0.1
