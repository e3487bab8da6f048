"""Genomics plots: a genome track of predicted against pyrodigal gene labels, and predicted
against true values of a sequence property.

In the track the two label rows show strand only (a frame changes every base, too fine to see at genome
scale); the bottom row marks every base whose label differs, so a gene called on the right
strand in the wrong frame shows there.
"""
from __future__ import annotations

import numpy as np

from apps.genomics.genes import NON_CODING, coding_stretches
from core.io import atomic_write

STRANDS = ("non-coding", "gene on +", "gene on -")
COLOURS = ["#f2f2f2", "#3182bd", "#e6550d"]


def gene_track(predicted: np.ndarray, true: np.ndarray, path: str, title: str = "", start: int = 0,
               bases: int = 20000, min_gene: int = 90) -> None:
    """Draw ``predicted`` and ``true`` labels over ``[start, start + bases)`` to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    stop = min(start + bases, len(true))
    rows = np.stack([true[start:stop], predicted[start:stop]])
    wrong = (rows[0] != rows[1])[None]
    strand = np.where(rows == NON_CODING, 0, np.where(rows <= 3, 1, 2))
    extent = (start, stop, 0, 1)
    fig, axes = plt.subplots(3, 1, figsize=(11, 2.8), sharex=True, gridspec_kw={"height_ratios": [1, 1, 0.4]})
    names = [f"pyrodigal ({len(coding_stretches(true[start:stop], min_gene))} genes)",
             f"model ({len(coding_stretches(predicted[start:stop], min_gene))} genes)", "disagree"]
    for ax, data, cmap, name in zip(axes, (strand[:1], strand[1:], wrong.astype(int)),
                                    (ListedColormap(COLOURS),) * 2 + (ListedColormap(["white", "#cb181d"]),), names):
        ax.imshow(data, aspect="auto", interpolation="nearest", cmap=cmap, extent=extent,
                  vmin=0, vmax=len(COLOURS) - 1 if cmap.N == len(COLOURS) else 1)
        ax.set_yticks([0.5], [name])
    axes[-1].set_xlabel(f"position in the held-out region (bases; labels differ at {100 * wrong.mean():.1f} %)")
    fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(COLOURS, STRANDS)], ncol=3,
               loc="upper center", fontsize=8, frameon=False, bbox_to_anchor=(0.5, 1.0))
    if title:
        fig.suptitle(title, y=0.9, fontsize=9, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def property_scatter(panels: list[tuple[np.ndarray, np.ndarray, str, dict[str, float]]], path: str,
                     what: str = "sequences") -> None:
    """Predicted against true values of each regression target (one panel per ``(predicted, true,
    name, scores)``), with the identity line and the test metrics in the title: where a model is
    biased (off the diagonal) shows at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.6), squeeze=False)
    for ax, (predicted, true, name, scores) in zip(axes[0], panels):
        ax.scatter(true, predicted, s=8, alpha=0.6, color="#3182bd", edgecolors="none")
        low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
        ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
        shown = ", ".join(f"{k} {scores[k]:.3f}" for k in ("rmse", "pearson", "spearman") if k in scores)
        ax.set_title(f"{len(true)} held-out {what}\n{shown}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
