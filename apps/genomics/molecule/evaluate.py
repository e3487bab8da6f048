"""How well a Regression Transformer writes molecules to order (the paper's generation benchmark).

Each seed molecule is primed with a property value drawn from the other seeds' values (so the
request differs from what the seed has), a share of its atoms is masked and filled in, and RDKit
judges the result: validity (parses), uniqueness (distinct canonical SMILES among the valid),
novelty (valid and not in the training set), changed (differs from its seed: an unchanged copy
is trivially valid), and the Spearman correlation between the primed and the measured property.
"""
from __future__ import annotations

import torch
from torchmetrics.functional import spearman_corrcoef

from apps.genomics.molecule.data import Molecule, collate
from apps.genomics.molecule.inference import beam_fills
from apps.genomics.molecules import canonical, molecule_properties


@torch.no_grad()
def generation_metrics(task, seeds: list[Molecule], prefix: int, training: set[str], fraction: float = 0.4,
                       temperature: float = 1.0, top_k: int = 0, batch_size: int = 32, seed: int = 0,
                       beam: int = 0) -> dict[str, float]:
    """``training``: canonical SMILES of the training molecules (for novelty). Sampling at
    ``temperature`` from the ``top_k`` likeliest tokens, or with ``beam`` > 0 constrained beam
    search, keeping the likeliest filling RDKit parses (:func:`~apps.genomics.molecule.inference.beam_fills`)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(seeds), generator=gen)
    primed = {p: torch.tensor([seeds[int(i)].values[p] for i in order]) for p in task.properties}
    written, asked = [], {p: [] for p in task.properties}
    for first in range(0, len(seeds), batch_size):
        part = seeds[first:first + batch_size]
        batch = collate(part, prefix)
        where = batch["is_smiles"] & (torch.rand(batch["ids"].shape, generator=gen) < fraction)
        goal = {p: v[first:first + len(part)] for p, v in primed.items()}
        if beam > 0:
            written += [fills[0] for fills in beam_fills(task, batch, where, goal, beam, 1)]
        else:
            out = task.infill(batch, where, goal, temperature=temperature, top_k=top_k, generator=gen)
            written += task.smiles_of(out, batch["mask"])
        for p in task.properties:
            asked[p] += goal[p].tolist()
    canon = [canonical(s) for s in written]
    valid = [k for k, c in enumerate(canon) if c is not None]
    distinct = {canon[k] for k in valid}
    scores = {"validity": len(valid) / len(seeds),
              "uniqueness": len(distinct) / max(len(valid), 1),
              "novelty": len(distinct - training) / max(len(distinct), 1),
              "changed": sum(canon[k] != canonical(seeds[k].smiles) for k in valid) / max(len(valid), 1)}
    measured = [molecule_properties(written[k]) for k in valid]
    for p in task.properties:
        if len(valid) >= 3:
            got = torch.tensor([m[p] for m in measured])
            want = torch.tensor([asked[p][k] for k in valid])
            scores[f"{p}_spearman"] = float(spearman_corrcoef(got, want))
        else:
            scores[f"{p}_spearman"] = float("nan")
    return scores
