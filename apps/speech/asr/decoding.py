"""Greedy and beam decoding for the CTC and transducer heads of :class:`apps.speech.asr.ASRModel`.

All functions take the encoder output of ONE batch and return one label list per utterance.

* CTC greedy: best label per frame, repeats collapsed, blanks removed.
* CTC beam: prefix beam search (Hannun et al. 2014, without a language model): every prefix keeps
  two scores, "ends in blank" and "ends in a label", so that "a a" (two frames of one label) and
  "a <blank> a" (two labels) are told apart.
* Transducer greedy: per frame, emit the best label and feed it to the prediction network until
  blank wins (at most ``max_symbols`` labels per frame, and at most ``model.max_labels`` in all:
  an untrained model may babble past the prediction network's positions).
* Transducer beam: the same frame-synchronous search with ``beam`` hypotheses (Graves 2012,
  limited to ``max_symbols`` labels per frame as in icefall's ``beam_search``); hypotheses that
  reach the same labels by different alignments are merged by adding their probabilities.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from apps.speech.asr.model import BLANK, ASRModel
from core.models.state import DecoderState

#: labels a transducer may emit on one frame before it must move on (greedy and beam)
MAX_SYMBOLS = 5


def ctc_collapse(best: list[int], labels: list[int], prev: int = BLANK) -> int:
    """Append the labels of per-frame best ids ``best`` to ``labels`` (repeats collapsed, blanks
    dropped), continuing after a frame whose best id was ``prev``; returns the last frame's id."""
    for k in best:
        if k != prev and k != BLANK:
            labels.append(k)
        prev = k
    return prev


def ctc_greedy(model: ASRModel, h: torch.Tensor, lens: torch.Tensor) -> list[list[int]]:
    out = []
    for row, n in zip(model.ctc_head(h).argmax(-1).tolist(), lens.tolist()):
        labels: list[int] = []
        ctc_collapse(row[:n], labels)
        out.append(labels)
    return out


def _logadd(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def ctc_beam(model: ASRModel, h: torch.Tensor, lens: torch.Tensor, beam: int = 8) -> list[list[int]]:
    log_probs = model.ctc_head(h).float().log_softmax(-1)
    return [_ctc_prefix_beam(lp[:n], beam) for lp, n in zip(log_probs, lens.tolist())]


def _ctc_prefix_beam(log_probs: torch.Tensor, beam: int) -> list[int]:
    """log_probs [T, V] of one utterance -> best label sequence."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (ends blank, ends label)
    top = min(beam, log_probs.shape[1])
    for frame in log_probs:
        values, labels = frame.topk(top)
        candidates = [(k, v) for k, v in zip(labels.tolist(), values.tolist()) if k != BLANK]
        blank = frame[BLANK].item()
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_blank, p_label) in beams.items():
            total = _logadd(p_blank, p_label)
            entry = nxt.setdefault(prefix, [-math.inf, -math.inf])
            entry[0] = _logadd(entry[0], total + blank)
            for k, lp in candidates:
                grown = nxt.setdefault(prefix + (k,), [-math.inf, -math.inf])
                if prefix and prefix[-1] == k:  # "a a" collapses to "a"; a new "a" needs a blank between
                    entry[1] = _logadd(entry[1], p_label + lp)
                    grown[1] = _logadd(grown[1], p_blank + lp)
                else:
                    grown[1] = _logadd(grown[1], total + lp)
        ranked = sorted(nxt.items(), key=lambda item: _logadd(*item[1]), reverse=True)[:beam]
        beams = {prefix: (pb, pl) for prefix, (pb, pl) in ranked}
    return list(max(beams.items(), key=lambda item: _logadd(*item[1]))[0])


def transducer_greedy(model: ASRModel, h: torch.Tensor, lens: torch.Tensor,
                      max_symbols: int = MAX_SYMBOLS) -> list[list[int]]:
    """One utterance at a time: the prediction network only advances on emitted labels, and rows of
    one batch emit at different frames (an attention predictor's cache cannot skip a row)."""
    enc = model.joint_enc(h)  # [B, T, J]
    out = []
    for i, n in enumerate(lens.tolist()):
        labels: list[int] = []
        transducer_greedy_frames(model, enc[i, :n], *model.start(1), labels, max_symbols)
        out.append(labels)
    return out


def transducer_greedy_frames(model: ASRModel, enc: torch.Tensor, g: torch.Tensor, state: DecoderState,
                             labels: list[int], max_symbols: int = MAX_SYMBOLS) -> tuple[torch.Tensor, DecoderState]:
    """Greedy decoding of projected encoder frames ``enc`` [T, J] continuing from the prediction
    ``g`` [1, J] and its ``state``: emitted labels are appended to ``labels``; returns the (g, state)
    to continue from (streaming feeds frames as they arrive)."""
    for frame in enc:
        for _ in range(max_symbols):
            best = int(model.joint(frame, g[0]).argmax())
            if best == BLANK or len(labels) >= model.max_labels:
                break
            labels.append(best)
            g, state = model.step(torch.tensor([best], device=enc.device), state)
    return g, state


@dataclass
class _Hyp:
    labels: tuple[int, ...]
    score: float
    g: torch.Tensor  # projected prediction after the labels, [J]
    state: DecoderState


def transducer_beam(model: ASRModel, h: torch.Tensor, lens: torch.Tensor, beam: int = 4,
                    max_symbols: int = MAX_SYMBOLS) -> list[list[int]]:
    enc = model.joint_enc(h)
    return [_transducer_beam_one(model, enc[i, :n], beam, max_symbols) for i, n in enumerate(lens.tolist())]


def _transducer_beam_one(model: ASRModel, enc: torch.Tensor, beam: int, max_symbols: int) -> list[int]:
    g, state = model.start(1)
    cache: dict[tuple[int, ...], tuple[torch.Tensor, DecoderState]] = {(): (g[0], state)}

    def prediction(labels: tuple[int, ...], parent: _Hyp) -> tuple[torch.Tensor, DecoderState]:
        if labels not in cache:
            g_new, s_new = model.step(torch.tensor([labels[-1]], device=enc.device), parent.state)
            cache[labels] = (g_new[0], s_new)
        return cache[labels]

    done = [_Hyp((), 0.0, g[0], state)]  # hypotheses at the start of the current frame
    for frame in enc:
        expanding, done = done, []
        finished: dict[tuple[int, ...], _Hyp] = {}
        for emitted in range(max_symbols + 1):  # hypotheses that emitted max_symbols labels may still end the frame
            if not expanding:
                break
            log_probs = model.joint(frame[None], torch.stack([hyp.g for hyp in expanding])).float().log_softmax(-1)
            grown: dict[tuple[int, ...], tuple[float, _Hyp]] = {}
            for hyp, lp in zip(expanding, log_probs):
                stay = finished.get(hyp.labels)  # blank: this frame ends for the hypothesis
                score = hyp.score + lp[BLANK].item()
                finished[hyp.labels] = _Hyp(hyp.labels, score if stay is None else _logadd(stay.score, score),
                                            hyp.g, hyp.state)
                if emitted == max_symbols or len(hyp.labels) >= model.max_labels:
                    continue
                values, labels = lp.topk(min(beam + 1, lp.shape[0]))
                for k, v in zip(labels.tolist(), values.tolist()):
                    if k == BLANK:
                        continue
                    key = hyp.labels + (k,)
                    s = hyp.score + v
                    if key not in grown or grown[key][0] < s:
                        grown[key] = (s, hyp)
            # a label-extended hypothesis already worse than the beam-th one that ended the frame
            # cannot enter the frame's beam: stop growing it (icefall's pruning)
            ended = sorted((hyp.score for hyp in finished.values()), reverse=True)
            floor = ended[beam - 1] if len(ended) >= beam else -math.inf
            best = [item for item in sorted(grown.items(), key=lambda item: item[1][0], reverse=True)[:beam]
                    if item[1][0] > floor]
            expanding = []
            for key, (s, parent) in best:
                g_k, s_k = prediction(key, parent)
                expanding.append(_Hyp(key, s, g_k, s_k))
        done = sorted(finished.values(), key=lambda hyp: hyp.score, reverse=True)[:beam]
    return list(max(done, key=lambda hyp: hyp.score).labels)
