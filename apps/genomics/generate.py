"""Sample DNA from a trained DNA language model, continuing each prompt.

    python -m apps.genomics.generate --checkpoint CKPT --prompt ATGAAA [--prompt ...] [--fasta F]
           [--length 1000] [--samples 1] [--temperature 1.0] [--top-k 0] [--seed 0] [--output OUT.fa]

Writes FASTA: one record per prompt and sample (``>prompt3_sample1``), prompt included, in
input order. Only the four bases and N are ever sampled. A prompt with characters that are not
DNA is reported on stderr and gets an empty record, so record order still follows the input; the
exit status is then 1 (2 on a fatal error: bad checkpoint or options).
"""
from __future__ import annotations

import argparse
import sys

import torch

from apps.genomics.dna.task import DNALMTask
from apps.genomics.nucleotides import ALPHABET, BASES
from core.data.readers import read_fasta
from core.errors import EXIT_SKIPPED, UserError, entry_point
from core.generation import GenerationConfig, generate
from core.io import atomic_write_text
from core.tokenizers.base import EOS_ID


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
    p.add_argument("--output", help="write FASTA here instead of stdout")
    a = p.parse_args(argv)
    if a.length < 1 or a.samples < 1 or a.temperature <= 0:
        raise UserError("--length and --samples must be at least 1 and --temperature positive")
    prompts = [(f"prompt{i + 1}", text, "--prompt") for i, text in enumerate(a.prompt)]
    if a.fasta:
        records, report = read_fasta(a.fasta)  # (characters are checked per prompt below)
        report.warn()
        prompts += [(r.id, r.sequence, f"{a.fasta}:{r.line}") for r in records]
    if not prompts:
        raise UserError("give at least one --prompt or a --fasta of prompts")
    task = DNALMTask.from_checkpoint(a.checkpoint)
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


if __name__ == "__main__":
    sys.exit(main())
