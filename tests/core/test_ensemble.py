"""Ensemble decoding: the concatenated state decodes as the members would, their probabilities averaged."""
import pytest
import torch

from core.generation import Ensemble, GenerationConfig, generate
from core.models import BackboneConfig, EncoderDecoder, Seq2SeqConfig

BOS, EOS = 1, 2


def member(seed: int, mixer: str = "attention"):
    torch.manual_seed(seed)
    enc = BackboneConfig(d_model=32, n_layers=2, n_heads=4, dropout=0.0)
    dec = BackboneConfig(d_model=32, n_layers=1 + seed % 2, n_heads=4, dropout=0.0, mixer=mixer,
                         position="rope" if mixer == "attention" else "none")
    model = EncoderDecoder(Seq2SeqConfig(12, 12, enc, dec)).eval()
    with torch.no_grad():  # (at initialisation every model repeats one token: nothing to average)
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model


SRC = torch.tensor([[5, 6, 7, 8, EOS], [9, 4, EOS, 0, 0], [4, 4, 4, EOS, 0]])


@torch.no_grad()
def mean_probs_greedy(models, src, max_len):
    """Every step recomputes each member's whole prefix: the obviously right ensemble greedy search."""
    out = []
    for row in src:
        ys = [BOS]
        for _ in range(max_len):
            probs = torch.stack([m(row[None], torch.tensor([ys]))[0, -1].softmax(-1) for m in models]).mean(0)
            nxt = int(probs.argmax())
            if nxt == EOS:
                break
            ys.append(nxt)
        out.append(ys[1:])
    return out


@torch.no_grad()
def test_greedy_of_mixed_members_equals_recomputed_mean_of_probabilities():
    """Members with different depths and mixers (a KV cache beside a GLA state): the state split
    must hand each its own layers back through the searches' row dropping."""
    models = [member(0), member(1, "gla"), member(2)]
    ens = Ensemble(models)
    hyps = generate(ens, ens.start(SRC), GenerationConfig(max_len=8))
    assert [h[0].tokens for h in hyps] == mean_probs_greedy(models, SRC, 7)
    # the ensemble's choices are its own, not one member's
    alone = [[h[0].tokens for h in generate(m, m.start(SRC), GenerationConfig(max_len=8))] for m in models]
    assert all(a != [h[0].tokens for h in hyps] for a in alone)


@torch.no_grad()
def test_beam_of_copies_equals_the_member_alone():
    """Identical members average to the member itself: any slip in reordering, expanding or
    dropping the concatenated state would change the beams."""
    model = member(3, "gla")
    cfg = GenerationConfig(strategy="beam", beam_size=4, n_best=3, max_len=10)
    ens = Ensemble([model, model])
    ours, ref = generate(ens, ens.start(SRC), cfg), generate(model, model.start(SRC), cfg)
    assert [[h.tokens for h in row] for row in ours] == [[h.tokens for h in row] for row in ref]
    for row_o, row_r in zip(ours, ref):
        for o, r in zip(row_o, row_r):
            assert o.score == pytest.approx(r.score, abs=1e-4)


def test_members_must_agree_on_special_ids():
    a, b = member(0), member(1)
    b.eos_id = 3
    with pytest.raises(ValueError, match="bos_id, eos_id"):
        Ensemble([a, b])
