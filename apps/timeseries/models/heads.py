"""What a forecaster predicts per future value, and how it is scored: a point (MSE), quantiles
(pinball loss), or a Student-t distribution (negative log-likelihood).

Every head reads a raw output of ``size`` numbers per value ([..., size]) and offers the same
four things, so the task, the metrics and ``forecast`` never ask which head it is: ``loss``
against the truth, ``point`` (the forecast a point metric scores: the median or the location),
``quantiles`` at any levels (prediction intervals), and ``rescale`` (the raw output in other
units: RevIN's and the scaler's inverse are affine maps ``y * scale + shift``).

CRPS (the proper score of a whole predictive distribution) is estimated from quantiles: twice the
mean pinball loss over 99 evenly spaced levels (Gneiting & Raftery 2007), for every head alike,
so the figures compare across heads; a point forecast's CRPS is its absolute error.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CRPS_LEVELS = torch.linspace(0.01, 0.99, 99)


def pinball(pred: torch.Tensor, target: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean quantile loss of ``pred`` [..., Q] at ``levels`` [Q] against ``target`` [...]."""
    diff = target.unsqueeze(-1) - pred
    return torch.maximum(levels * diff, (levels - 1) * diff).mean()


class PointHead:
    size = 1

    def loss(self, raw, target):
        return F.mse_loss(raw[..., 0], target)

    def point(self, raw):
        return raw[..., 0]

    def quantiles(self, raw, levels):
        return raw[..., :1].expand(*raw.shape[:-1], len(levels))

    def rescale(self, raw, shift, scale):
        return raw * scale.unsqueeze(-1) + shift.unsqueeze(-1)

    def crps(self, raw, target):
        return (raw[..., 0] - target).abs().mean()


class QuantileHead:
    """Quantiles at ``levels`` (sorted, so the predicted quantiles never cross)."""

    def __init__(self, levels: tuple[float, ...] = (0.1, 0.5, 0.9)):
        self.levels = torch.tensor(sorted(levels))
        self.size = len(levels)

    def loss(self, raw, target):
        return pinball(raw, target, self.levels.to(raw.device))

    def _sorted(self, raw):
        return raw.sort(-1).values

    def point(self, raw):
        return self.quantiles(raw, torch.tensor([0.5]))[..., 0]

    def quantiles(self, raw, levels):
        """Linear interpolation between the predicted quantiles (flat beyond the outermost)."""
        q, known = self._sorted(raw), self.levels.to(raw.device)
        levels = levels.to(raw.device).clamp(known[0], known[-1])
        hi = torch.searchsorted(known, levels).clamp(1, len(known) - 1)
        lo = hi - 1
        w = (levels - known[lo]) / (known[hi] - known[lo])
        return q[..., lo] * (1 - w) + q[..., hi] * w

    def rescale(self, raw, shift, scale):
        return raw * scale.unsqueeze(-1) + shift.unsqueeze(-1)

    def crps(self, raw, target):
        levels = CRPS_LEVELS.to(raw.device)
        return 2 * pinball(self.quantiles(raw, levels), target, levels)


class StudentTHead:
    """Location, scale (softplus) and degrees of freedom (2 + softplus, so the variance exists)."""

    size = 3

    def params(self, raw):
        return raw[..., 0], F.softplus(raw[..., 1]) + 1e-4, 2.0 + F.softplus(raw[..., 2])

    def loss(self, raw, target):
        loc, scale, df = self.params(raw)
        return -torch.distributions.StudentT(df, loc, scale).log_prob(target).mean()

    def point(self, raw):
        return raw[..., 0]

    def quantiles(self, raw, levels):
        """Through scipy's inverse t CDF (torch has none); evaluation only, so no gradient needed."""
        from scipy.special import stdtrit

        loc, scale, df = (v.detach().double().cpu().unsqueeze(-1) for v in self.params(raw))
        t = torch.from_numpy(stdtrit(df.numpy(), levels.double().cpu().numpy()))
        return (loc + scale * t).to(raw.dtype).to(raw.device)

    def rescale(self, raw, shift, scale):
        """Location shifts and scales; the scale parameter only scales; df stays."""
        loc, s, _ = self.params(raw)
        return torch.stack([loc * scale + shift, softplus_inverse(s * scale - 1e-4), raw[..., 2]], -1)

    def crps(self, raw, target):
        levels = CRPS_LEVELS.to(raw.device)
        return 2 * pinball(self.quantiles(raw, levels), target, levels)


def softplus_inverse(y: torch.Tensor) -> torch.Tensor:
    y = y.clamp_min(1e-6)
    return y + torch.log(-torch.expm1(-y))


HEADS = {"point": PointHead, "quantile": QuantileHead, "student_t": StudentTHead}


def build_head(kind: str, levels: tuple[float, ...] = (0.1, 0.5, 0.9)):
    if kind not in HEADS:
        raise ValueError(f"unknown output head {kind!r}; choose {', '.join(HEADS)}")
    return QuantileHead(levels) if kind == "quantile" else HEADS[kind]()
