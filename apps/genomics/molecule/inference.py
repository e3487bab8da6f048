"""A trained Regression Transformer over a user's molecules: what :mod:`apps.genomics.predict`
and :mod:`apps.genomics.generate` run for an RT checkpoint.

A molecule file is a CSV whose header's first column is ``SMILES`` (other columns ignored), or a
``.smi``-style file without header: ``SMILES [name]`` per line. Every record gets its rows, in file
order; one the model cannot read (empty, not SMILES, RDKit cannot parse it, a token the training
vocabulary lacks, too long for the model) keeps them with ``status`` saying why.
"""
from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from apps.genomics.molecule.data import Molecule, collate, prefix_tokens
from apps.genomics.molecules import canonical, molecule_properties
from core.data.reports import SkipReport
from core.errors import DataError
from core.tokenizers import SmilesTokenizer
from core.tokenizers.base import UNK_ID


@dataclass
class Seed:
    line: int
    smiles: str
    name: str
    molecule: Molecule | None  # None: the model cannot read it, and ``status`` says why
    status: str


def read_molecules(path: str, task) -> tuple[list[Seed], SkipReport]:
    """Every record of ``path`` as a :class:`Seed`, encoded for ``task`` (its tokenizer, its
    properties, RDKit's values of them in the prefix)."""
    path_ = Path(path)
    opener = gzip.open if path_.suffix == ".gz" else open
    report = SkipReport(str(path))
    tok, limit = task.tokenizers["molecule"], task.arch.encoder.max_len
    prefix = len(task.tables()["digits"])
    seeds = []
    try:
        with opener(path_, "rt", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    csv = bool(lines) and lines[0].split(",")[0].strip().lower() == "smiles"
    for line, text in enumerate(lines[1:] if csv else lines, start=2 if csv else 1):
        if not text.strip():
            continue
        parts = text.split(",") if csv else re.split(r"\s+", text.strip(), maxsplit=1)
        smiles = parts[0].strip()
        name = (parts[1].strip() if len(parts) > 1 and not csv else "")
        report.total += 1
        values = molecule_properties(smiles) if smiles and SmilesTokenizer.is_tokenizable(smiles) else None
        status, molecule = "ok", None
        if not smiles:
            status = "empty SMILES"
        elif not SmilesTokenizer.is_tokenizable(smiles):
            status = "not SMILES"
        elif values is None:
            status = "RDKit cannot parse"
        else:
            pieces = SmilesTokenizer.split(smiles)
            ids = tok.encode(" ".join(prefix_tokens(task.properties, values) + pieces))
            if UNK_ID in ids:
                status = "token not in the training vocabulary"
            elif len(ids) > limit:
                status = f"longer than the model reads ({len(ids) - prefix} > {limit - prefix} tokens)"
            else:
                molecule = Molecule(smiles, values, np.array(ids, dtype=np.int64), f"{path}:{line}")
        if molecule is None:
            report.skip(status, line)
        seeds.append(Seed(line, smiles, name, molecule, status))
    if not any(s.molecule is not None for s in seeds):
        report.require(0)
    return seeds, report


def batches(seeds: list[Seed], size: int):
    """The readable seeds in file order, ``size`` at a time."""
    good = [s for s in seeds if s.molecule is not None]
    for first in range(0, len(good), size):
        yield good[first:first + size]


def predict_rows(task, seeds: list[Seed], batch_size: int) -> list[str]:
    """Table rows: ``line smiles <p> ... rdkit_<p> ... status``, one per record."""
    props = task.properties
    prefix = len(task.tables()["digits"])
    predicted: dict[int, dict[str, float]] = {}
    for part in batches(seeds, batch_size):
        values = task.predict_properties(collate([s.molecule for s in part], prefix))
        for k, s in enumerate(part):
            predicted[s.line] = {p: float(values[p][k]) for p in props}
    rows = ["\t".join(["line", "smiles", *props, *(f"rdkit_{p}" for p in props), "status"]) + "\n"]
    for s in seeds:
        got = predicted.get(s.line)
        shown = ([f"{got[p]:.3f}" for p in props] + [f"{s.molecule.values[p]:.3f}" for p in props]
                 if got else [""] * (2 * len(props)))
        rows.append("\t".join([str(s.line), s.smiles, *shown, s.status]) + "\n")
    return rows


def generate_rows(task, seeds: list[Seed], targets: dict[str, float], fraction: float, samples: int,
                  beam: int, temperature: float, top_k: int, batch_size: int, generator: torch.Generator) -> list[str]:
    """Property-primed rewrites of each seed: ``samples`` rows per record (``sample`` 1..n).

    A property in ``targets`` is primed to its value; the others keep the seed's own. ``fraction``
    of each seed's atoms are masked: drawn afresh per sample when sampling; with ``beam`` > 0 one
    draw per seed and ``samples`` of its ``beam`` likeliest distinct fillings, those RDKit parses
    first (so ``beam`` >= ``samples``)."""
    props = task.properties
    prefix = len(task.tables()["digits"])
    written: dict[int, list[str]] = {}
    for part in batches(seeds, batch_size):
        batch = collate([s.molecule for s in part], prefix)
        primed = {p: torch.tensor([targets.get(p, s.molecule.values[p]) for s in part]) for p in props}
        outs: list[list[str]] = [[] for _ in part]
        if beam > 0:
            outs = beam_fills(task, batch, mask_atoms(batch, fraction, generator), primed, beam, samples)
        else:
            for _ in range(samples):
                where = mask_atoms(batch, fraction, generator)
                ids = task.infill(batch, where, primed, temperature=temperature, top_k=top_k, generator=generator)
                for r, smiles in enumerate(task.smiles_of(ids, batch["mask"])):
                    outs[r].append(smiles)
        for s, out in zip(part, outs):
            written[s.line] = out
    head = ["line", "seed", "sample", *(f"primed_{p}" for p in props), "smiles", "valid",
            *(f"rdkit_{p}" for p in props), "status"]
    rows = ["\t".join(head) + "\n"]
    for s in seeds:
        if s.molecule is None:
            rows.append("\t".join([str(s.line), s.smiles, "", *[""] * len(props), "", "", *[""] * len(props),
                                   s.status]) + "\n")
            continue
        asked = [f"{targets.get(p, s.molecule.values[p]):.3f}" for p in props]
        for k, smiles in enumerate(written[s.line]):
            measured = molecule_properties(smiles) if smiles else None
            shown = [f"{measured[p]:.3f}" for p in props] if measured else [""] * len(props)
            rows.append("\t".join([str(s.line), s.smiles, str(k + 1), *asked, smiles, "yes" if measured else "no",
                                   *shown, s.status]) + "\n")
    return rows


def beam_fills(task, batch, where: torch.Tensor, primed: dict[str, torch.Tensor], beam: int,
               keep: int) -> list[list[str]]:
    """Per molecule, ``keep`` of its ``beam`` likeliest distinct fillings: those RDKit parses first,
    then by score."""
    ids, _ = task.infill_beam(batch, where, primed, beam=beam)
    out = []
    for r in range(len(ids)):
        fills = list(dict.fromkeys(task.smiles_of(ids[r], batch["mask"][r].expand(beam, -1))))
        out.append(sorted(fills, key=lambda f: canonical(f) is None)[:keep])
    return out


def mask_atoms(batch, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """``fraction`` of each molecule's SMILES positions, drawn at random; at least one per molecule."""
    draw = torch.rand(batch["ids"].shape, generator=generator)
    where = batch["is_smiles"] & (draw < fraction)
    lowest = draw.masked_fill(~batch["is_smiles"], 2.0).argmin(1)  # so no seed comes back untouched
    where[torch.arange(len(where)), lowest] = True
    return where
