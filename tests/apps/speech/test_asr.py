"""ASR model: losses and gradients for every head, padding and causality of the encoder, and the
decoders against exhaustive search over every short transcript."""
import itertools

import pytest
import torch
import torch.nn.functional as F
import torchaudio

from apps.speech.asr import decoding
from apps.speech.asr.model import BLANK, ASRConfig, ASRModel
from core.models import BackboneConfig
from core.tokenizers import BOS_ID


def tiny(loss="joint", mixer="attention", streaming=False, vocab=12, seed=0, prune_range=0):
    torch.manual_seed(seed)
    backbone = dict(d_model=32, n_heads=2, dropout=0.0)
    return ASRModel(ASRConfig(
        vocab_size=vocab, encoder=BackboneConfig(n_layers=2, mixer=mixer, **backbone),
        predictor=BackboneConfig(n_layers=1, **backbone), loss=loss, joint_dim=24, streaming=streaming,
        subsampling_channels=8, prune_range=prune_range))


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(2, 8000, generator=g) * 0.1
    return audio, torch.tensor([8000, 5600]), torch.tensor([[4, 5, 6, 7], [8, 9, 0, 0]]), torch.tensor([4, 2])


@pytest.mark.parametrize("loss", ["ctc", "transducer", "joint"])
@pytest.mark.parametrize("mixer,streaming", [("attention", False), ("mamba", True)])
def test_losses_are_finite_and_reach_every_parameter(loss, mixer, streaming):
    model = tiny(loss, mixer, streaming)
    out = model(*batch())
    assert set(out) == {"loss", *(["ctc"] if loss != "transducer" else []), *(["transducer"] if loss != "ctc" else [])}
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("loss", ["transducer", "joint"])
def test_pruned_transducer_trains_every_parameter_and_evaluates_exactly(loss):
    """prune_range trains through the pruned and simple losses; without gradients (evaluation) the
    loss is the exact transducer loss of the same weights."""
    model = tiny(loss, prune_range=2)
    model.specaugment = None
    out = model(*batch())
    assert {"simple", "transducer", "loss"} <= set(out) and torch.isfinite(out["loss"])
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    exact = tiny(loss)
    exact.specaugment = None
    exact.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("simple_")})
    with torch.no_grad():
        evaluated, reference = model(*batch()), exact(*batch())
    assert "simple" not in evaluated
    torch.testing.assert_close(evaluated["transducer"], reference["transducer"])


@pytest.mark.parametrize("mixer,streaming", [("attention", False), ("mamba", False), ("attention", True), ("gla", True)])
def test_padding_does_not_change_the_encoding(mixer, streaming):
    model = tiny(mixer=mixer, streaming=streaming).eval()
    audio, lens, _, _ = batch()
    with torch.no_grad():
        h, h_lens = model.encode(audio, lens)
        alone, alone_lens = model.encode(audio[1:, :5600], lens[1:])
        padded = audio.clone()
        padded[1, 5600:] = 1.0  # garbage in the padding
        h_garbage, _ = model.encode(padded, lens)
    n = int(alone_lens[0])
    assert int(h_lens[1]) == n
    torch.testing.assert_close(h[1, :n], alone[0, :n], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h_garbage[1, :n], h[1, :n], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mixer", ["attention", "mamba"])
def test_streaming_encoder_is_causal(mixer):
    """A causal encoder's frames over a prefix of the audio are the first frames of the whole."""
    model = tiny(mixer=mixer, streaming=True).eval()
    audio = batch()[0][:1]
    with torch.no_grad():
        full, _ = model.encode(audio, torch.tensor([8000]))
        prefix, n = model.encode(audio[:, :4000], torch.tensor([4000]))
    torch.testing.assert_close(prefix[0, :int(n)], full[0, :int(n)], rtol=1e-4, atol=1e-5)


def _transducer_nll(model, h, labels):
    t = torch.tensor([labels], dtype=torch.long).reshape(1, -1)
    g, _ = model.predict(torch.cat([torch.full((1, 1), BOS_ID), t], 1))
    logits = model.joint(model.joint_enc(h)[:, :, None], model.joint_pred(g)[:, None])
    return torchaudio.functional.rnnt_loss(logits, t.int(), torch.tensor([h.shape[1]], dtype=torch.int32),
                                           torch.tensor([len(labels)], dtype=torch.int32), blank=BLANK).item()


def _all_transcripts(labels, max_len):
    return [list(s) for n in range(max_len + 1) for s in itertools.product(labels, repeat=n)]


@pytest.mark.parametrize("seed", range(6))
def test_transducer_beam_finds_the_most_likely_transcript(seed):
    """With a beam wide enough to keep every hypothesis, the search is exact: its transcript is the
    argmax over all transcripts of the likelihood summed over alignments (rnnt_loss)."""
    model = tiny(loss="transducer", vocab=4, seed=seed).eval()
    torch.manual_seed(100 + seed)
    # flat distributions, so that summing over alignments (not taking the best one) decides
    h = torch.randn(1, 3, 32) * 0.3
    with torch.no_grad():  # 3 frames, at most 2 labels each: every reachable transcript is enumerated
        nll = {tuple(s): _transducer_nll(model, h, s) for s in _all_transcripts([1, 2, 3], 6)}
        found = decoding.transducer_beam(model, h, torch.tensor([3]), beam=2000, max_symbols=2)[0]
        greedy = decoding.transducer_greedy(model, h, torch.tensor([3]), max_symbols=2)[0]
    assert found == list(min(nll, key=nll.get))
    assert nll[tuple(found)] <= nll[tuple(greedy)] + 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ctc_prefix_beam_finds_the_most_likely_transcript(seed):
    model = tiny(loss="ctc", vocab=4, seed=seed).eval()
    torch.manual_seed(200 + seed)
    h = torch.randn(1, 4, 32) * 3
    with torch.no_grad():
        log_probs = model.ctc_head(h).log_softmax(-1).transpose(0, 1)
        nll = {}
        for s in _all_transcripts([1, 2, 3], 4):
            target = torch.tensor([s], dtype=torch.long).reshape(1, -1)
            nll[tuple(s)] = F.ctc_loss(log_probs, target, torch.tensor([4]), torch.tensor([len(s)]),
                                       blank=BLANK, reduction="sum").item()
        found = decoding.ctc_beam(model, h, torch.tensor([4]), beam=200)[0]
        greedy = decoding.ctc_greedy(model, h, torch.tensor([4]))[0]
    best = min(nll, key=nll.get)
    assert found == list(best)
    assert nll[tuple(found)] <= nll[tuple(greedy)] + 1e-6


def test_greedy_decoders_collapse_and_skip_blanks():
    model = tiny(loss="ctc", vocab=5).eval()
    frames = torch.tensor([[3, 3, BLANK, 3, 4, 4, BLANK, BLANK]])
    with torch.no_grad():
        model.ctc_head.weight.zero_()
        model.ctc_head.bias.zero_()
        h = torch.zeros(1, 8, 32)

        class Fixed(torch.nn.Module):  # a head whose best label per frame is `frames`
            def forward(self, x):
                return F.one_hot(frames, 5).float() * 10

        model.ctc_head = Fixed()
        assert decoding.ctc_greedy(model, h, torch.tensor([8])) == [[3, 3, 4]]
        assert decoding.ctc_greedy(model, h, torch.tensor([4])) == [[3, 3]]
        assert decoding.ctc_beam(model, h, torch.tensor([8]), beam=4) == [[3, 3, 4]]
