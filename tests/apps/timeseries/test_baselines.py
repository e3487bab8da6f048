"""Classical baselines: seasonal naive repeats the last season; ETS and ARIMA fitted on one
segment forecast later windows with the same parameters."""
import numpy as np
import pytest

from apps.timeseries.baselines import Statistical, seasonal_naive
from core.errors import UserError


def test_seasonal_naive_repeats_the_last_season():
    past = np.arange(2 * 10 * 1, dtype=float).reshape(2, 10, 1)
    out = seasonal_naive(past, 7, season=3)
    assert out[0, :, 0].tolist() == [7, 8, 9, 7, 8, 9, 7]
    assert seasonal_naive(past, 4, season=50)[1, :, 0].tolist() == [19] * 4  # longer than the window: last value


def series(n=900, season=24):
    t = np.arange(n)
    noise = np.random.default_rng(0).normal(0, 0.3, n)
    return (50 + 5 * np.sin(2 * np.pi * t / season) + 0.01 * t + noise)[:, None]


@pytest.mark.parametrize("kind", ["ets", "arima"])
def test_statistical_baselines_forecast_unseen_windows(kind):
    y = series()
    model = Statistical(kind, season=24).fit(y[:600])
    starts = np.arange(650, 850, 10)
    got = model.forecast(y, starts, 24)
    truth = np.stack([y[s:s + 24] for s in starts])
    assert got.shape == (20, 24, 1) and np.isfinite(got).all()
    mae = np.abs(got - truth).mean()
    flat = np.abs(np.stack([y[s - 1:s] for s in starts]) - truth).mean()  # the last value held flat
    if kind == "ets":  # the seasonal model sees the cycle: far better than holding the last value
        assert mae < 0.2 * flat
    else:
        assert mae < 3 * flat
    changed = y.copy()
    changed[650:] += 100.0  # the window's own future must not leak into its forecast
    assert np.allclose(model.forecast(changed, np.array([650]), 24), got[:1])


def test_statistical_options_a_user_can_get_wrong():
    with pytest.raises(UserError, match="ets or arima"):
        Statistical("prophet")
    with pytest.raises(RuntimeError, match="fit the baseline first"):
        Statistical("arima").forecast(series(), np.array([700]), 5)
