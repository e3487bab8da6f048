"""Predicted vs reference mel spectrograms, stacked on one time axis and one colour scale.

A shared colour scale makes level differences visible (a quiet or over-bright prediction shows
up as a colour shift, not hidden by per-panel normalisation); a shared time axis shows at a
glance whether the prediction is too fast or too slow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.io import atomic_write


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def plot_spectrograms(pred: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray | None, path: str | Path,
                      title: str = "", hop_s: float = 0.01) -> Path:
    """Write a PNG of log-mel spectrograms ``pred`` and ``ref`` ([T, n_mels] each; ``ref`` may be
    None for a prediction alone) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"predicted": _numpy(pred)}
    if ref is not None:
        panels["reference"] = _numpy(ref)
    vmin = min(float(p.min()) for p in panels.values())
    vmax = max(float(p.max()) for p in panels.values())
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3 * len(panels)), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, (name, mel) in zip(axes, panels.items()):
        image = ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=(0.0, mel.shape[0] * hop_s, 0, mel.shape[1]))
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, ax=axes, label="log power")
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
    return path
