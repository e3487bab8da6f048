"""Translate text with a trained model, from a Lightning checkpoint or an exported ONNX folder.

    echo "phoneme" | python -m apps.translation.translate --checkpoint best.ckpt --beam 5 --nbest 3
    python -m apps.translation.translate --onnx runs/demo/onnx --input words.txt --output out.txt
    python -m apps.translation.translate --checkpoint a.ckpt b.ckpt c.ckpt --beam 5 < words.txt  # an ensemble

Output line i answers input line i: input is split at "\\n" only (a trailing "\\r" is dropped), so
form feeds, U+2028 and the other characters ``str.splitlines`` also breaks at stay inside their line.
A blank input line gives a blank output line. With ``--nbest N > 1`` each input gets N rows
``<input line number>\\t<score>\\t<hypothesis>`` (line numbers from 1, as in the error reports).

A line that cannot be translated -- invalid UTF-8, or longer than the model's source limit (its
position table: ``max_len`` tokens with EOS) -- gets an EMPTY answer (no n-best rows), never a
truncated one that would look like a real translation; the other lines are translated. Skipped lines
are reported on stderr as ``warning: <file or <stdin>>: skipped K of N records (reason: lines …)``
and the exit status is then 1 (``core.errors.EXIT_SKIPPED``); 0 when every line was translated, 2
for an error that stops the command (missing or unusable checkpoint, unreadable input).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from core.data.reports import SkipReport, split_lines
from core.errors import EXIT_SKIPPED, UserError, entry_point
from core.generation import GenerationConfig, generate
from core.io import atomic_write_text
from core.tokenizers import load_tokenizer


class Translator:
    """Strings in, n-best strings out, over either backend (both speak core.generation's protocol)."""

    def __init__(self, checkpoint: str | list[str] | None = None, onnx_dir: str | None = None):
        """Several checkpoints decode as an ensemble (:class:`core.generation.Ensemble`): their
        next-token probabilities averaged; they must share both tokenizers."""
        if (checkpoint is None) == (onnx_dir is None):
            raise UserError("give exactly one of --checkpoint or --onnx")
        if checkpoint is not None:
            from apps.translation.task import TranslationModel
            from core.export import max_len
            from core.generation import Ensemble

            paths = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
            modules = [TranslationModel.from_checkpoint(path) for path in paths]
            first = modules[0]
            self.src_tok, self.tgt_tok = first.src_tokenizer, first.tgt_tokenizer
            tokenizers = (self.src_tok.to_json(), self.tgt_tok.to_json())
            for path, m in zip(paths[1:], modules[1:]):
                if (m.src_tokenizer.to_json(), m.tgt_tokenizer.to_json()) != tokenizers:
                    raise UserError(f"{path}: its tokenizers differ from {paths[0]}'s; an ensemble needs the same ones")
            models = [m.model for m in modules]
            self.model = models[0] if len(models) == 1 else Ensemble(models)
            #: longest source in tokens (EOS included) every position table holds; None = no limit
            limits = [max_len(enc) for m in models
                      if (enc := getattr(getattr(m, "cfg", None), "encoder", None)) is not None]  # (none: HF models)
            self.max_source_len: int | None = min(limits) if limits else None
        else:
            from core.export import OnnxEncoderDecoder

            self.model = OnnxEncoderDecoder(onnx_dir)
            self.src_tok = load_tokenizer(Path(onnx_dir) / "tokenizer.src.json")
            self.tgt_tok = load_tokenizer(Path(onnx_dir) / "tokenizer.tgt.json")
            self.max_source_len = self.model.config.get("max_src_len")

    @torch.no_grad()
    def __call__(self, sources: list[str], cfg: GenerationConfig, batch_size: int = 64,
                 report: SkipReport | None = None) -> list[list[tuple[str, float]]]:
        """n-best (text, score) per source; a blank source, or one over :attr:`max_source_len`
        tokens, gets ``[]`` (the latter counted in ``report`` under line ``i + 1``)."""
        results: list[list[tuple[str, float]]] = [[] for _ in sources]
        tok = self.src_tok
        ids = {i: tok.encode(s.strip()) + [tok.eos_id] for i, s in enumerate(sources) if s.strip()}
        limit = self.max_source_len
        if limit is not None:
            for i in [i for i, x in ids.items() if len(x) > limit]:
                if report is not None:
                    report.skip(f"longer than {limit} tokens", i + 1)
                del ids[i]
        todo = sorted(ids, key=lambda i: len(ids[i]))
        for start in range(0, len(todo), batch_size):
            rows = todo[start:start + batch_size]
            width = max(len(ids[i]) for i in rows)
            src = torch.tensor([ids[i] + [tok.pad_id] * (width - len(ids[i])) for i in rows])
            for i, hyps in zip(rows, generate(self.model, self.model.start(src), cfg)):
                results[i] = [(self.tgt_tok.decode(h.tokens), h.score) for h in hyps]
        return results


def decode_records(lines: list[bytes], report: SkipReport) -> list[str]:
    """Text of each line; invalid UTF-8 becomes "" (a blank answer) and is counted in ``report``."""
    out = []
    for lineno, raw in enumerate(lines, start=1):
        if raw.strip():
            report.total += 1
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            report.skip("invalid UTF-8", lineno)
            out.append("")
    return out


@entry_point
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", nargs="+", help="Lightning checkpoint written by apps.translation.train; "
                     "several: an ensemble (probabilities averaged at each step; same tokenizers)")
    src.add_argument("--onnx", help="folder written by apps.translation.export")
    p.add_argument("--input", help="text file, one source per line (default: stdin)")
    p.add_argument("--output", help="write here instead of stdout (written whole, atomically)")
    p.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--nbest", type=int, default=1)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--length-penalty", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args(argv)
    if a.nbest > a.beam:
        p.error("--nbest cannot exceed --beam")
    translator = Translator(a.checkpoint, a.onnx)  # a bad checkpoint fails before stdin is read
    data = Path(a.input).read_bytes() if a.input else sys.stdin.buffer.read()
    report = SkipReport(a.input or "<stdin>")
    lines = decode_records(split_lines(data), report)
    cfg = GenerationConfig(strategy="beam" if a.beam > 1 else "greedy", beam_size=a.beam, n_best=a.nbest,
                           max_len=a.max_len, length_penalty=a.length_penalty)
    results = translator(lines, cfg, a.batch_size, report)
    if a.nbest == 1:
        out = [r[0][0] if r else "" for r in results]
    else:
        out = [f"{line}\t{score:.4f}\t{text}" for line, r in enumerate(results, start=1) for text, score in r]
    text = "\n".join(out) + ("\n" if out else "")
    if a.output:
        atomic_write_text(a.output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if report.n_skipped:
        print(f"warning: {report.summary()}", file=sys.stderr)
        raise SystemExit(EXIT_SKIPPED)


if __name__ == "__main__":
    main()
