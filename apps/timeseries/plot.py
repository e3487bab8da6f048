"""The forecast plot: recent history, the forecast (with its 80 % interval when the model is
probabilistic) and, when the forecast starts inside the series, what really happened."""
from __future__ import annotations

import numpy as np

from core.io import atomic_write


def forecast_plot(path: str, history_dates, history: np.ndarray, dates, forecast: np.ndarray, column: str,
                  low: np.ndarray | None = None, high: np.ndarray | None = None, truth: np.ndarray | None = None,
                  title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.plot(history_dates, history, color="#444444", lw=1.0, label="history")
    if truth is not None:
        ax.plot(dates[: len(truth)], truth, color="#2ca02c", lw=1.0, label="actual")
    if low is not None and high is not None:
        ax.fill_between(dates, low, high, color="#1f77b4", alpha=0.2, lw=0, label="80 % interval")
    ax.plot(dates, forecast, color="#1f77b4", lw=1.4, label="forecast")
    ax.axvline(dates[0], color="grey", lw=0.6, ls="--")
    ax.set_ylabel(column)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
