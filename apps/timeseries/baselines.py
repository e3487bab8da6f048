"""The classical forecasters every neural one is measured against, on the same windows:
seasonal naive (repeat the last season), and statsmodels' ETS and ARIMA.

The statistical models are fitted once per channel on the training segment; the fitted model's
filter then runs once over the whole series with those parameters, and each test window is a
dynamic forecast from its first future step, reading only what came before it (refitting per
window would cost minutes per model; re-filtering each window alone would start ETS's seasonal
states at the wrong phase). They are univariate: every channel is forecast on its own, as the
channel-independent neural models do.
"""
from __future__ import annotations

import warnings

import numpy as np

from core.errors import UserError

KINDS = ("seasonal_naive", "ets", "arima")


def seasonal_naive(past: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """past [N, L, C] -> [N, H, C]: step t of the horizon repeats the value one season before it
    (the last value when the window is shorter than a season)."""
    season = season if 1 <= season <= past.shape[1] else 1
    last = past[:, past.shape[1] - season:]
    reps = -(-horizon // season)
    return np.tile(last, (1, reps, 1))[:, :horizon]


class Statistical:
    """``kind`` ``ets`` (additive error, damped additive trend, additive season when the training
    segment holds two seasons; pass the longest season the data has, a week for electricity demand) or ``arima`` (``order``, no seasonal part: long seasons such as 48
    half-hours make seasonal ARIMA fits take hours)."""

    def __init__(self, kind: str, season: int = 1, order: tuple[int, int, int] = (2, 1, 1)):
        if kind not in ("ets", "arima"):
            raise UserError(f"statistical baseline must be ets or arima, got {kind!r}")
        self.kind, self.season, self.order = kind, season, tuple(order)
        self.params: list[np.ndarray] = []

    def _model(self, y: np.ndarray):
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        if self.kind == "arima":
            return SARIMAX(y, order=self.order)
        seasonal = self.season if 2 <= self.season and len(y) >= 2 * self.season else None
        # a long season's initial states (336 half-hours in a week) are hundreds of parameters for
        # the likelihood search: start them from the data's first seasons instead
        init = "heuristic" if seasonal and seasonal > 52 else "estimated"
        return ETSModel(y, error="add", trend="add", damped_trend=True, seasonal="add" if seasonal else None,
                        seasonal_periods=seasonal, initialization_method=init)

    def fit(self, train: np.ndarray) -> "Statistical":
        """train [T, C] in original units."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the fit is scored on the test windows
            self.params = [np.asarray(self._model(train[:, c]).fit(disp=False).params) for c in range(train.shape[1])]
        return self

    def forecast(self, series: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
        """series [T, C] (original units, train segment first); starts [N]: the index of each
        window's first future step -> [N, H, C]."""
        import pandas as pd

        if not self.params:
            raise RuntimeError("fit the baseline first")
        out = np.empty((len(starts), horizon, series.shape[1]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for c, params in enumerate(self.params):
                y = pd.Series(series[:, c])  # (ETS's predictions need an index)
                run = self._model(y).smooth(params) if self.kind == "ets" else self._model(y).filter(params)
                for n, first in enumerate(np.asarray(starts).tolist()):
                    pred = run.get_prediction(start=first, end=first + horizon - 1, dynamic=0)
                    out[n, :, c] = np.asarray(pred.predicted_mean)
        return out
