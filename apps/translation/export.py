"""Export a trained translation checkpoint to ONNX and check it against PyTorch.

    python -m apps.translation.export --checkpoint best.ckpt --out runs/g2p/onnx

Writes ``encoder.onnx``, ``decoder.onnx`` (decoder step with ``past_key_values.{i}.*`` /
``past_state.{i}.*`` in, ``present.{i}.*`` / ``present_state.{i}.*`` out: :mod:`core.export.names`),
``config.json``, the two tokenizers, and portable ``safetensors`` weights under ``pytorch/``. Then
decodes sample inputs greedily with both onnxruntime and PyTorch and fails unless every output is
identical. The output folder must be new or empty (an error otherwise: nothing is overwritten).
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

from apps.translation.task import TranslationModel
from apps.translation.translate import Translator
from core.errors import entry_point
from core.export import export_encoder_decoder, new_output_dir
from core.generation import GenerationConfig
from core.training import save_portable


def sample_sources(model: TranslationModel, n: int, seed: int = 0) -> list[str]:
    """Strings made of source-vocabulary symbols: in-domain enough to exercise real decoding."""
    rng = random.Random(seed)
    tok = model.src_tokenizer
    symbols = [tok.decode([i]) for i in range(4, tok.vocab_size)]
    symbols = [s for s in symbols if s.strip()] or ["a"]
    sep = " " if getattr(tok, "kind", "") == "space" else ""
    return [sep.join(rng.choice(symbols) for _ in range(rng.randint(2, 10))) for _ in range(n)]


def export(checkpoint: str, out: str, samples: list[str] | None = None, n_check: int = 32) -> int:
    out_dir = new_output_dir(out)
    model = TranslationModel.from_checkpoint(checkpoint)
    export_encoder_decoder(model.model, out_dir, metadata={"bos_id": model.model.bos_id, "eos_id": model.model.eos_id,
                                                           "checkpoint": str(checkpoint)})
    model.src_tokenizer.save(out_dir / "tokenizer.src.json")
    model.tgt_tokenizer.save(out_dir / "tokenizer.tgt.json")
    save_portable(out_dir / "pytorch", model.model, dict(model.hparams), model.tokenizers_json)

    sources = samples or sample_sources(model, n_check)
    cfg = GenerationConfig(max_len=model.decoding.max_len)
    with torch.no_grad():
        ours = Translator(checkpoint=checkpoint)(sources, cfg)
        onnx = Translator(onnx_dir=str(out_dir))(sources, cfg)
    same = sum(a[0][0] == b[0][0] for a, b in zip(ours, onnx))
    print(f"exported to {out_dir}; onnxruntime vs PyTorch greedy decoding: {same}/{len(sources)} identical")
    for src, (text, _) in list(zip(sources, (o[0] for o in onnx)))[:3]:
        print(f"  {src!r} -> {text!r}")
    return 0 if same == len(sources) else 1


@entry_point
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--samples", help="file of source lines for the parity check (default: generated)")
    a = p.parse_args(argv)
    samples = Path(a.samples).read_text(encoding="utf-8").splitlines() if a.samples else None
    code = export(a.checkpoint, a.out, samples)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
