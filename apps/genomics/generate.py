"""Sample DNA from a trained DNA language model, or write molecules to order with a Regression
Transformer.

    python -m apps.genomics.generate --checkpoint CKPT --prompt ATGAAA [--prompt ...] [--fasta F]
           [--length 1000] [--samples 1] [--temperature 1.0] [--top-k 0] [--seed 0] [--output OUT.fa]
    python -m apps.genomics.generate --checkpoint RT_CKPT --smiles SEEDS.csv [--target qed=0.9 ...]
           [--fraction 0.4] [--samples 1] [--beam 0] [--temperature 1.0] [--top-k 0] [--output OUT.tsv]
    python -m apps.genomics.generate --checkpoint RT_CKPT [--seeds 300]

Writes FASTA: one record per prompt and sample (``>prompt3_sample1``), prompt included, in
input order. Only the four bases and N are ever sampled. A prompt with characters that are not
DNA is reported on stderr and gets an empty record, so record order still follows the input; the
exit status is then 1 (2 on a fatal error: bad checkpoint or options).

Molecules: each seed of ``--smiles`` is primed with the ``--target`` values (the properties not
named keep the seed's own, RDKit-computed), ``--fraction`` of its atoms are masked and the model
fills them in, by sampling, or with ``--beam K`` by constrained beam search (the ``--samples``
likeliest distinct fillings); :mod:`apps.genomics.molecule.inference` describes the table (one
row per seed and sample, RDKit's validity and values of what was written; a seed the model cannot
read keeps one row saying why). Without ``--smiles``, ``--seeds`` of the checkpoint's test
molecules, each primed with another's values, are rewritten and the generation metrics printed
(:mod:`apps.genomics.molecule.evaluate`).
"""
from __future__ import annotations

import argparse
import sys

import torch

from apps.genomics.dna.task import DNALMTask
from apps.genomics.molecule.task import RegressionTransformerTask
from apps.genomics.nucleotides import ALPHABET, BASES
from core.data.readers import read_fasta
from core.errors import EXIT_SKIPPED, UserError, entry_point
from core.generation import GenerationConfig, generate
from core.io import atomic_write_text
from core.tokenizers.base import EOS_ID
from core.training import BaseTask


def sample(model, tok, prompt: str, length: int, samples: int, temperature: float, top_k: int,
           generator: torch.Generator) -> list[str]:
    """``samples`` continuations of ``length`` bases after ``prompt`` (which conditions them all).
    ``model`` is a :class:`~core.models.DecoderLM` or its export (:class:`~core.export.OnnxDecoderLM`):
    both have ``start`` and ``step``, and the loop is core.generation's either way."""
    ids = tok.encode(prompt)
    bases = torch.tensor([i for i in (tok.token_to_id(b) for b in BASES + BASES.lower()) if i is not None])
    allowed = torch.zeros(tok.vocab_size, dtype=torch.bool)
    allowed[bases] = True

    def only_bases(step: int, rows: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
        return logp.masked_fill(~allowed, float("-inf"))  # (the last step's forced end still ends)

    with torch.inference_mode():
        state = model.start(samples)
        if len(ids) > 1:  # the prompt but its last base, which generation feeds first
            _, state = model.step(torch.tensor([ids[:-1]] * samples), state)
        cfg = GenerationConfig(strategy="sample", max_len=length + 1, n_best=1, temperature=temperature, top_k=top_k,
                               bos_id=ids[-1], eos_id=EOS_ID)
        hyps = generate(model, state, cfg, generator=generator, processor=only_bases)
    return [prompt + tok.decode(h[0].tokens) for h in hyps]


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint of a DNA language model (apps.genomics.train)")
    p.add_argument("--prompt", action="append", default=[], help="DNA to continue (repeatable)")
    p.add_argument("--fasta", help="prompts from a FASTA file (after any --prompt)")
    p.add_argument("--length", type=int, default=1000, help="bases to generate per sample")
    p.add_argument("--samples", type=int, default=1, help="samples per prompt")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="sample from the k likeliest bases (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="write FASTA (DNA) or the table (molecules) here instead of stdout")
    p.add_argument("--smiles", help="molecules: seeds to rewrite (CSV with a SMILES column, or .smi)")
    p.add_argument("--target", action="append", default=[], metavar="NAME=VALUE",
                   help="molecules: a property value to prime with, e.g. qed=0.9 (repeatable)")
    p.add_argument("--fraction", type=float, default=0.4, help="molecules: share of each seed's atoms rewritten")
    p.add_argument("--beam", type=int, default=0, help="molecules: constrained beam search of this width (0 = sample)")
    p.add_argument("--seeds", type=int, default=300, help="molecules without --smiles: held-out seeds to score")
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args(argv)
    if a.length < 1 or a.samples < 1 or a.temperature <= 0 or a.batch_size < 1:
        raise UserError("--length, --samples and --batch-size must be at least 1 and --temperature positive")
    task = BaseTask.from_checkpoint(a.checkpoint)
    if isinstance(task, RegressionTransformerTask):
        if a.prompt or a.fasta:
            raise UserError(f"{a.checkpoint}: a Regression Transformer rewrites --smiles seeds; --prompt and --fasta "
                            "need a DNA language model")
        return generate_molecules(a, task)
    if not isinstance(task, DNALMTask):
        raise UserError(f"{a.checkpoint}: a {type(task).__name__} checkpoint; apps.genomics.generate reads DNA "
                        "language models and Regression Transformers")
    if a.smiles or a.target or a.beam:
        raise UserError(f"{a.checkpoint}: a DNA language model; --smiles, --target and --beam need a Regression Transformer")
    prompts = [(f"prompt{i + 1}", text, "--prompt") for i, text in enumerate(a.prompt)]
    if a.fasta:
        records, report = read_fasta(a.fasta)  # (characters are checked per prompt below)
        report.warn()
        prompts += [(r.id, r.sequence, f"{a.fasta}:{r.line}") for r in records]
    if not prompts:
        raise UserError("give at least one --prompt or a --fasta of prompts")
    longest = max(len(text) for _, text, _ in prompts) + a.length
    if longest > task.arch.decoder.max_len:
        raise UserError(f"{a.checkpoint}: the model reads at most {task.arch.decoder.max_len} bases "
                        f"(prompt + --length is {longest})")
    generator = torch.Generator().manual_seed(a.seed)
    model, tok = task.model.eval(), task.tokenizers["dna"]
    out, skipped = [], 0
    for name, text, where in prompts:
        bad = sorted(set(text) - ALPHABET)
        if not text or bad:
            print(f"{where}: skipped prompt {name}: " + ("empty" if not text else
                  "not DNA: " + ", ".join(repr(c) for c in bad[:10])), file=sys.stderr)
            skipped += 1
            out += [f">{name}_sample{k + 1}\n" for k in range(a.samples)]
            continue
        for k, seq in enumerate(sample(model, tok, text, a.length, a.samples, a.temperature, a.top_k, generator)):
            out.append(f">{name}_sample{k + 1}\n" + "\n".join(seq[i:i + 80] for i in range(0, len(seq), 80)) + "\n")
    text = "".join(out)
    if a.output:
        atomic_write_text(a.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_SKIPPED if skipped else 0


def generate_molecules(a, task: RegressionTransformerTask) -> int:
    from apps.genomics.molecule import inference

    targets = {}
    for item in a.target:
        name, _, value = item.partition("=")
        try:
            targets[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"--target {item!r}: write NAME=VALUE, e.g. qed=0.9") from None
        if name.strip() not in task.properties:
            raise UserError(f"--target {item!r}: {a.checkpoint} knows {', '.join(task.properties)}")
    if not 0 < a.fraction <= 1 or a.beam < 0 or (a.beam and a.beam < a.samples) or a.seeds < 3:
        raise UserError("--fraction must be in (0, 1], --beam 0 or at least --samples, --seeds at least 3")
    generator = torch.Generator().manual_seed(a.seed)
    if a.smiles is None:
        if a.output or targets:
            raise UserError("--output and --target describe a --smiles file; give one")
        return held_out_generation(a, task)
    seeds, report = inference.read_molecules(a.smiles, task)
    rows = inference.generate_rows(task, seeds, targets, a.fraction, a.samples, a.beam, a.temperature, a.top_k,
                                   a.batch_size, generator)
    text = "".join(rows)
    if a.output:
        atomic_write_text(a.output, text)
    else:
        sys.stdout.write(text)
    if report.n_skipped:
        print(f"warning: {report.summary()}", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


def held_out_generation(a, task: RegressionTransformerTask) -> int:
    from apps.genomics.molecule.data import MoleculeDataModule
    from apps.genomics.molecule.evaluate import generation_metrics
    from apps.genomics.molecules import canonical
    from core.training import datamodule_from_checkpoint

    dm = datamodule_from_checkpoint(MoleculeDataModule, a.checkpoint)
    dm.use_tokenizers_json(task.tokenizers_json)
    splits = dm.splits()
    seeds = splits["test"][:a.seeds]
    if len(seeds) < 3:
        raise UserError(f"{a.checkpoint}: its data has {len(seeds)} test molecules; generation metrics need 3")
    training = {canonical(m.smiles) for m in splits["train"]}
    scores = generation_metrics(task, seeds, dm.prefix_length, training, a.fraction, a.temperature, a.top_k,
                                a.batch_size, a.seed, a.beam)
    how = f"beam {a.beam}" if a.beam else f"sampling (temperature {a.temperature:g}, top-k {a.top_k or 'all'})"
    print(f"{len(seeds)} held-out seeds, {a.fraction:.0%} of atoms rewritten by {how}, primed with another seed's values: "
          + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
