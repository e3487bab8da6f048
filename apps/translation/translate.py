"""Translate text with a trained model, from a Lightning checkpoint or an exported ONNX folder.

    echo "phoneme" | python -m apps.translation.translate --checkpoint best.ckpt --beam 5 --nbest 3
    python -m apps.translation.translate --onnx runs/demo/onnx --input words.txt --output out.txt

One output line per input line (blank input -> blank output). With ``--nbest N > 1`` each input
gets N lines ``<input number>\t<score>\t<hypothesis>``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from core.generation import GenerationConfig, generate
from core.tokenizers import load_tokenizer


class Translator:
    """Strings in, n-best strings out, over either backend (both speak core.generation's protocol)."""

    def __init__(self, checkpoint: str | None = None, onnx_dir: str | None = None):
        if (checkpoint is None) == (onnx_dir is None):
            raise ValueError("give exactly one of --checkpoint or --onnx")
        if checkpoint is not None:
            from apps.translation.model import TranslationModel

            module = TranslationModel.from_checkpoint(checkpoint)
            self.model, self.src_tok, self.tgt_tok = module.model, module.src_tokenizer, module.tgt_tokenizer
            self.ids = {"bos_id": module.bos_id, "eos_id": module.eos_id}
        else:
            from core.export import OnnxEncoderDecoder

            self.model = OnnxEncoderDecoder(onnx_dir)
            self.ids = {"bos_id": self.model.generation_config().bos_id, "eos_id": self.model.generation_config().eos_id}
            self.src_tok = load_tokenizer(Path(onnx_dir) / "tokenizer.src.json")
            self.tgt_tok = load_tokenizer(Path(onnx_dir) / "tokenizer.tgt.json")

    @torch.no_grad()
    def __call__(self, sources: list[str], cfg: GenerationConfig, batch_size: int = 64) -> list[list[tuple[str, float]]]:
        cfg = GenerationConfig(**{**asdict(cfg), **self.ids})
        results: list[list[tuple[str, float]]] = [[] for _ in sources]
        todo = sorted((i for i, s in enumerate(sources) if s.strip()), key=lambda i: len(sources[i]))
        for start in range(0, len(todo), batch_size):
            rows = todo[start:start + batch_size]
            tok = self.src_tok
            ids = [tok.encode(sources[i].strip()) + [tok.eos_id] for i in rows]
            width = max(map(len, ids))
            src = torch.tensor([x + [tok.pad_id] * (width - len(x)) for x in ids])
            for i, hyps in zip(rows, generate(self.model, self.model.start(src), cfg)):
                results[i] = [(self.tgt_tok.decode(h.tokens), h.score) for h in hyps]
        return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="Lightning checkpoint written by apps.translation.train")
    src.add_argument("--onnx", help="folder written by apps.translation.export")
    p.add_argument("--input", help="text file, one source per line (default: stdin)")
    p.add_argument("--output", help="write here instead of stdout")
    p.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--nbest", type=int, default=1)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--length-penalty", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args(argv)
    if a.nbest > a.beam:
        p.error("--nbest cannot exceed --beam")
    lines = (Path(a.input).read_text(encoding="utf-8") if a.input else sys.stdin.read()).splitlines()
    cfg = GenerationConfig(strategy="beam" if a.beam > 1 else "greedy", beam_size=a.beam, n_best=a.nbest,
                           max_len=a.max_len, length_penalty=a.length_penalty)
    results = Translator(a.checkpoint, a.onnx)(lines, cfg, a.batch_size)
    if a.nbest == 1:
        out = [r[0][0] if r else "" for r in results]
    else:
        out = [f"{i}\t{score:.4f}\t{text}" for i, r in enumerate(results) for text, score in r]
    text = "\n".join(out) + ("\n" if out else "")
    if a.output:
        Path(a.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
