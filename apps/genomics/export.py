"""Export a trained genomics checkpoint to ONNX and check onnxruntime against PyTorch.

    python -m apps.genomics.export --checkpoint CKPT --out DIR [--fasta F] [--samples 4] [--length 512]

The checkpoint says which task wrote it (:mod:`apps.genomics.dna.onnx` describes the graphs):

* DNA language model: ``decoder.onnx`` + ``config.json`` (tokenizer included). The check reads
  ``--samples`` windows of ``--length`` bases through both runtimes (largest next-base logit
  difference), then continues their first 64 bases by 32, greedily and by seeded sampling, and
  fails unless every continuation is identical.
* Gene tagger: ``tagger.onnx`` + ``config.json``. The check tags the windows as one padded batch
  (one row shorter than the rest) and fails unless no real base's logit differs by more than 1e-4.
* Sequence-property model: ``property.onnx`` + ``config.json``
  (:mod:`apps.genomics.property.onnx`), checked on ``--samples`` test sequences as one padded batch
  (values and embeddings within 1e-4); ``--fasta`` and ``--length`` do not apply.

The windows come from the held-out test region of the checkpoint's genome, or of ``--fasta``.
The output folder must be new or empty (nothing is overwritten).
"""
from __future__ import annotations

import argparse
import sys

import torch

from apps.genomics.dna.data import DNADataModule, collate
from apps.genomics.dna.onnx import PARITY_ATOL, export_lm, export_tagger, lm_parity, tagger_parity
from apps.genomics.dna.task import DNALMTask, GeneTagTask
from apps.genomics.molecule.task import RegressionTransformerTask
from apps.genomics.property.task import PropertyTask
from core.errors import UserError, entry_point
from core.export import OnnxDecoderLM, new_output_dir
from core.training import BaseTask, datamodule_from_checkpoint

PROMPT, CONTINUATION = 64, 32


def held_out_windows(checkpoint: str, fasta: str | None, task: str, samples: int, length: int) -> list[dict]:
    """``samples`` windows of the held-out test region (``fasta``'s, or the checkpoint's genome)."""
    user = {"fasta": fasta, "gff": None} if fasta is not None else {}
    dm = datamodule_from_checkpoint(DNADataModule, checkpoint, **user, task="lm" if fasta is not None else task,
                                    window=length)
    data = dm.test_dataloader().dataset
    if len(data) == 0:
        raise UserError(f"{fasta or 'the checkpoint genome'}: the held-out region has no window")
    items = [data[i] for i in range(min(samples, len(data)))]
    for it in items:
        it["skip"] = torch.tensor(0)
    return items


def check_lm(task: DNALMTask, runner: OnnxDecoderLM, items: list[dict]) -> int:
    from apps.genomics.generate import sample

    ids = collate(items)["ids"][:, : min(len(it["ids"]) for it in items)]
    diff = lm_parity(task, runner, ids)
    print(f"onnxruntime vs PyTorch over {ids.shape[0]} x {ids.shape[1]} held-out bases: largest next-base logit "
          f"difference {diff:.2e} (limit {PARITY_ATOL:.0e})")
    tok = task.tokenizers["dna"]
    same = total = 0
    for temperature, top_k in ((1.0, 1), (1.0, 0)):  # greedy (top-1), then sampling
        for row in ids:
            prompt = tok.decode(row[:PROMPT].tolist())
            outs = [sample(m, tok, prompt, CONTINUATION, 1, temperature, top_k, torch.Generator().manual_seed(0))
                    for m in (task.model, runner)]
            same, total = same + (outs[0] == outs[1]), total + 1
    print(f"continuations (greedy and sampled, {CONTINUATION} bases): {same}/{total} identical")
    return 0 if diff <= PARITY_ATOL and same == total else 1


def check_tagger(task: GeneTagTask, out, items: list[dict]) -> int:
    from apps.genomics.dna.onnx import OnnxTagger

    if len(items) > 1:  # a padded row: the graph must ignore padding as PyTorch does
        items[-1] = {k: (v[: len(v) * 3 // 4] if v.dim() else v) for k, v in items[-1].items()}
    check = tagger_parity(task, OnnxTagger(out), collate(items))
    print(f"onnxruntime vs PyTorch on {len(items)} held-out windows: largest logit difference "
          f"{check['max_abs_diff']:.2e} (limit {PARITY_ATOL:.0e}), {100 * check['label_mismatch']:.4f} % of bases "
          "change label")
    return 0 if check["ok"] else 1


def export_property_model(a, task: PropertyTask) -> None:
    """``property.onnx``, checked on up to ``--samples`` test sequences of different lengths as one
    padded batch."""
    from apps.genomics.property.data import PropertyDataModule
    from apps.genomics.property.data import collate as collate_examples
    from apps.genomics.property.onnx import OnnxProperty, export_property, property_parity

    dm = datamodule_from_checkpoint(PropertyDataModule, a.checkpoint)
    dm.use_tokenizers_json(task.tokenizers_json)
    examples = (dm.splits()["test"] or dm.splits()["train"])[: a.samples]
    out = new_output_dir(a.out)
    export_property(task, out, dm.alphabet.name, {"checkpoint": str(a.checkpoint)})
    check = property_parity(task, OnnxProperty(out), collate_examples(examples, task.classes))
    lengths = sorted(len(e.ids) for e in examples)
    print(f"onnxruntime vs PyTorch on {len(examples)} held-out sequences ({lengths[0]}-{lengths[-1]} long, one "
          f"padded batch): largest difference {check['max_abs_diff']:.2e} (limit {PARITY_ATOL:.0e})")
    print(f"exported to {out}")
    if not check["ok"]:
        sys.exit(1)


def export_molecule_model(a, task) -> None:
    from apps.genomics.molecule.data import MoleculeDataModule, collate
    from apps.genomics.molecule.inference import mask_atoms
    from apps.genomics.molecule.onnx import OnnxMaskedLM, export_molecule, molecule_parity

    dm = datamodule_from_checkpoint(MoleculeDataModule, a.checkpoint)
    dm.use_tokenizers_json(task.tokenizers_json)
    molecules = (dm.splits()["test"] or dm.splits()["valid"])[: a.samples]
    out = new_output_dir(a.out)
    export_molecule(task, out, {"checkpoint": str(a.checkpoint)})
    batch = collate(molecules, dm.prefix_length)
    check = molecule_parity(task, OnnxMaskedLM(out), batch, mask_atoms(batch, 0.4, torch.Generator().manual_seed(0)))
    print(f"onnxruntime vs PyTorch on {len(molecules)} held-out molecules (one padded batch): largest logit difference "
          f"{check['max_abs_diff']:.2e} (limit {PARITY_ATOL:.0e}); predicted properties "
          f"{'identical' if check['same_properties'] else 'DIFFER'}; greedy infilling "
          f"{'identical' if check['same_infill'] else 'DIFFERS'}")
    print(f"exported to {out}")
    if not check["ok"]:
        sys.exit(1)


@entry_point
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint written by apps.genomics.train")
    p.add_argument("--out", required=True, help="new or empty folder for the graph")
    p.add_argument("--fasta", help="genome for the parity windows (default: the checkpoint's)")
    p.add_argument("--samples", type=int, default=4, help="held-out windows to check")
    p.add_argument("--length", type=int, default=512, help="bases per window")
    a = p.parse_args(argv)
    if a.samples < 1 or a.length < PROMPT + 1:
        raise UserError(f"--samples must be at least 1 and --length at least {PROMPT + 1}")
    task = BaseTask.from_checkpoint(a.checkpoint)
    if isinstance(task, PropertyTask):
        return export_property_model(a, task)
    if isinstance(task, RegressionTransformerTask):
        return export_molecule_model(a, task)
    if not isinstance(task, (DNALMTask, GeneTagTask)):
        raise UserError(f"{a.checkpoint}: a {type(task).__name__} checkpoint; apps.genomics.export exports "
                        "DNA language models, gene taggers, sequence-property models and Regression Transformers")
    is_lm = isinstance(task, DNALMTask)
    limit = task.arch.decoder.max_len if is_lm else task.arch.encoder.max_len
    if a.length > limit:
        raise UserError(f"{a.checkpoint}: the model reads at most {limit} bases (--length {a.length})")
    items = held_out_windows(a.checkpoint, a.fasta, "lm" if is_lm else "tag", a.samples, a.length)
    out = new_output_dir(a.out)
    meta = {"checkpoint": str(a.checkpoint)}
    if is_lm:
        export_lm(task, out, meta)
        code = check_lm(task, OnnxDecoderLM(out), items)
    else:
        export_tagger(task, out, meta)
        code = check_tagger(task, out, items)
    print(f"exported to {out}")
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
