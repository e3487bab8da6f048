"""Search: cache vs no cache, beam 1 == greedy, beam finds the exhaustive optimum, constraints, sampling."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from core.generation import GenerationConfig, generate
from core.models import BackboneConfig, DecoderLM, EncoderDecoder, LMConfig, Seq2SeqConfig

BOS, EOS = 1, 2


def tiny_seq2seq(vocab=12, seed=0):
    torch.manual_seed(seed)
    b = BackboneConfig(d_model=32, n_layers=2, n_heads=4, dropout=0.0)
    return EncoderDecoder(Seq2SeqConfig(vocab, vocab, b, b)).eval()


def src_batch():
    src = torch.tensor([[5, 6, 7, 8, EOS], [9, 4, EOS, 0, 0], [4, 4, 4, EOS, 0]])
    return src


def greedy_without_cache(model, src, max_len):
    """Recompute the whole prefix every step: the slow, obviously right greedy search."""
    out = []
    for row in src:
        ys = [BOS]
        for _ in range(max_len):
            logits = model(row[None], torch.tensor([ys]))[0, -1]
            nxt = int(logits.argmax())
            if nxt == EOS:
                break
            ys.append(nxt)
        out.append(ys[1:])
    return out


def test_greedy_incremental_equals_full_recompute():
    model = tiny_seq2seq()
    src = src_batch()
    hyps = generate(model, model.start(src), GenerationConfig(max_len=8))
    assert [h[0].tokens for h in hyps] == greedy_without_cache(model, src, 7)


def test_beam_one_equals_greedy():
    model = tiny_seq2seq(seed=3)
    src = src_batch()
    greedy = generate(model, model.start(src), GenerationConfig(max_len=10))
    beam = generate(model, model.start(src), GenerationConfig(strategy="beam", beam_size=1, max_len=10, length_penalty=0.0))
    assert [h[0].tokens for h in greedy] == [h[0].tokens for h in beam]
    for g, b in zip(greedy, beam):
        assert g[0].logprob == pytest.approx(b[0].logprob, abs=1e-4)


@torch.no_grad()
def test_beams_sharing_one_memory_copy_equal_materialised_memory():
    """expand/reorder keep one copy of the encoder keys/values per source; the logits and the
    cross-attention weights must equal those of a state with a copy per hypothesis."""
    model, k = tiny_seq2seq(seed=2), 3
    start = model.start(src_batch())
    shared, copied = start.expand(k), start.index_select(torch.arange(3).repeat_interleave(k))
    assert shared.memory[0]["key"].shape[0] == 3 and copied.memory[0]["key"].shape[0] == 9
    assert shared.batch_size == copied.batch_size == 9
    gen = torch.Generator().manual_seed(0)
    cross = model.decoder.stack.layers[-1].cross
    for _ in range(4):
        ids = torch.randint(3, 12, (9, 1), generator=gen)
        with cross.recording() as w_shared:
            a, shared = model.step(ids, shared)
        with cross.recording() as w_copied:
            b, copied = model.step(ids, copied)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(w_shared[0], w_copied[0], atol=1e-6, rtol=1e-5)
        within = torch.randint(0, k, (9,), generator=gen) + torch.arange(9) // k * k  # beams stay with their source
        shared, copied = shared.reorder(within), copied.index_select(within)
    assert shared.memory[0]["key"].shape[0] == 3
    # dropping rows (greedy search does) gives every surviving row its own memory row again
    kept = shared.index_select(torch.tensor([1, 7]))
    torch.testing.assert_close(kept.memory[0]["key"], start.memory[0]["key"][[0, 2]])


def test_batched_beam_search_equals_one_row_at_a_time():
    """Sources that finish leave the batch (keep_sources); the others must not notice. A logits
    processor ends source i after ``stop[i]`` tokens, so they finish at different steps."""
    model = tiny_seq2seq(seed=4)
    with torch.no_grad():  # unit-scale weights: at the default init the logits hardly depend on the context
        for p in model.parameters():
            p.normal_(0.0, 1.0 if p.dim() < 2 else p.shape[1] ** -0.5)
    src = torch.tensor([[5, 6, 7, 8, EOS], [9, 4, EOS, 0, 0], [4, 4, 4, EOS, 0], [7, EOS, 0, 0, 0], [8, 9, 10, 11, EOS]])
    stop = torch.tensor([3, 9, 1, 6, 11])
    cfg = GenerationConfig(strategy="beam", beam_size=3, n_best=3, max_len=12, length_penalty=0.0)

    def ending(offset):
        def processor(t, rows, logp):
            late = t >= stop[rows + offset]
            logp[late] = torch.where(torch.arange(logp.shape[1]) == EOS, 0.0, float("-inf"))
            return logp
        return processor

    batched = generate(model, model.start(src), cfg, processor=ending(0))
    lengths = set()
    for i in range(len(src)):
        row = src[i:i + 1, : int((src[i] != 0).sum())]
        alone = generate(model, model.start(row), cfg, processor=ending(i))[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in alone]
        lengths.add(max(len(h.tokens) for h in alone))
        for a, b in zip(batched[i], alone):
            assert a.score == pytest.approx(b.score, abs=1e-4)
    assert len(lengths) >= 3  # sources finished at different steps


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_finds_exhaustive_optimum(length_penalty):
    vocab, max_len = 5, 3
    model = tiny_seq2seq(vocab=vocab, seed=1)
    src = torch.tensor([[3, 4, EOS]])
    best, best_score = None, float("-inf")
    tokens = [t for t in range(vocab) if t not in (EOS, 0)]  # 0 is padding: never generated (see `no_pad`)
    for n in range(max_len):  # sequences of n tokens then EOS (the last step must be EOS)
        for body in itertools.product(tokens, repeat=n):
            ys = [BOS, *body, EOS]
            with torch.no_grad():
                logp = F.log_softmax(model(src, torch.tensor([ys[:-1]]))[0], -1)
            total = sum(float(logp[i, ys[i + 1]]) for i in range(len(ys) - 1))
            score = total / (len(ys) - 1) ** length_penalty
            if score > best_score:
                best, best_score = list(body), score
    cfg = GenerationConfig(strategy="beam", beam_size=25, max_len=max_len, length_penalty=length_penalty, n_best=3)
    no_pad = lambda row, prefix: [t for t in range(vocab) if t != 0]  # noqa: E731
    hyps = generate(model, model.start(src), cfg, no_pad)[0]
    assert hyps[0].tokens == best
    assert hyps[0].score == pytest.approx(best_score, abs=1e-4)
    assert [h.score for h in hyps] == sorted([h.score for h in hyps], reverse=True)
    assert len({tuple(h.tokens) for h in hyps}) == 3


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_allowed_tokens_constraint(strategy):
    model = tiny_seq2seq()
    src = src_batch()

    def allowed(row, prefix):  # row r may only emit token 4+r, at most 3 times, then EOS
        return [EOS] if len(prefix) >= 3 else [4 + row]

    cfg = GenerationConfig(strategy=strategy, beam_size=3, max_len=10)
    hyps = generate(model, model.start(src), cfg, allowed, generator=torch.Generator().manual_seed(0))
    for r, h in enumerate(hyps):
        assert h[0].tokens == [4 + r] * 3


def test_sampling_top_k_one_is_greedy_and_seeded():
    model = tiny_seq2seq()
    src = src_batch()
    greedy = generate(model, model.start(src), GenerationConfig(max_len=8))
    top1 = generate(model, model.start(src), GenerationConfig(strategy="sample", top_k=1, max_len=8),
                    generator=torch.Generator().manual_seed(0))
    assert [h[0].tokens for h in greedy] == [h[0].tokens for h in top1]
    cfg = GenerationConfig(strategy="sample", top_p=0.9, max_len=8, n_best=4)
    a = generate(model, model.start(src), cfg, generator=torch.Generator().manual_seed(7))
    b = generate(model, model.start(src), cfg, generator=torch.Generator().manual_seed(7))
    assert [[h.tokens for h in r] for r in a] == [[h.tokens for h in r] for r in b]
    assert all(len(r) == 4 for r in a)


@torch.no_grad()
def test_decoder_lm_generation_continues_prompt():
    torch.manual_seed(0)
    lm = DecoderLM(LMConfig(20, BackboneConfig(d_model=32, n_layers=2, n_heads=4, dropout=0.0))).eval()
    prompt = torch.tensor([[BOS, 5, 6, 7]])
    state = lm.start(1)
    _, state = lm.step(prompt[:, :-1], state)  # prefill all but the last prompt token
    cfg = GenerationConfig(max_len=6, bos_id=7)  # search feeds the last prompt token first
    hyps = generate(lm, state, cfg)[0][0]
    ys = prompt[0].tolist()
    for _ in range(5):  # the 6th step is forced to EOS
        nxt = int(lm(torch.tensor([ys]))[0, -1].argmax())
        if nxt == EOS:
            break
        ys.append(nxt)
    assert hyps.tokens == ys[4:]


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_logits_processor_sets_per_row_lengths(strategy):
    """A vectorised processor that ends row r after exactly 2 + r tokens (as a benchmark or a
    length-controlled task would); rows that finish early leave the batch."""
    model = tiny_seq2seq()
    src = src_batch()
    lengths = torch.tensor([2, 3, 4])
    seen_sizes = []

    def force_length(step, rows, logp):
        seen_sizes.append(len(rows))
        end = lengths[rows] == step
        logp[:, EOS] = torch.where(end, logp[:, EOS], torch.full_like(logp[:, EOS], float("-inf")))
        return torch.where(end[:, None] & (torch.arange(logp.shape[1]) != EOS), float("-inf"), logp)

    cfg = GenerationConfig(strategy=strategy, beam_size=2, max_len=10)
    hyps = generate(model, model.start(src), cfg, processor=force_length)
    assert [len(h[0].tokens) for h in hyps] == [2, 3, 4]
    if strategy == "greedy":
        assert seen_sizes[:5] == [3, 3, 3, 2, 1]  # finished rows were dropped from the batch


def test_bos_and_eos_come_from_the_model():
    model = tiny_seq2seq()
    model.bos_id, model.eos_id = 3, 5  # as an HF or ONNX model with its own specials would have
    src = src_batch()
    hyps = generate(model, model.start(src), GenerationConfig(max_len=8))
    for row, h in zip(src, hyps):
        ys = [3]
        for _ in range(7):
            nxt = int(model(row[None], torch.tensor([ys]))[0, -1].argmax())
            if nxt == 5:
                break
            ys.append(nxt)
        assert h[0].tokens == ys[1:]
    overridden = generate(model, model.start(src), GenerationConfig(max_len=8, bos_id=BOS, eos_id=EOS))
    assert [h[0].tokens for h in overridden] == greedy_without_cache(model, src, 7)


def test_a_model_without_bos_and_eos_gets_core_specials():
    """(ONNX runners before they carry the attributes, wrappers): BOS 1, EOS 2 as before."""
    model = tiny_seq2seq()

    class Wrapped:
        step = model.step

    src = src_batch()
    hyps = generate(Wrapped(), model.start(src), GenerationConfig(max_len=8))
    assert [h[0].tokens for h in hyps] == greedy_without_cache(model, src, 7)
