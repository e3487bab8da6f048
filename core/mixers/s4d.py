"""S4D: a diagonal state space model (Gu, Gupta, Goel & Ré 2022, "On the Parameterization and
Initialization of Diagonal State Space Models") as a mixer.

Every channel c runs its own linear time-invariant SSM with a diagonal complex state:

    h_t = Ā h_{t-1} + B̄ u_t,     y_t = 2 Re(C h_t) + D u_t          (per channel, N/2 complex modes)

ZOH discretisation with step dt: Ā = exp(dt A), B̄ = (exp(dt A) - 1) / A * B, B = 1.
S4D-Lin initialisation: A_n = -1/2 + i π n, C ~ complex normal, log dt ~ U[log 1e-3, log 1e-1].

State-size convention (the paper's): ``d_state`` = N counts the real state of a conjugate-pair
system; only N/2 complex modes are stored because their conjugates mirror them, which is what
``2 Re(.)`` accounts for. So ``d_state=64`` means 32 complex modes per channel.

Because the system is time-invariant, training and prefill use its convolution kernel

    K[c, l] = 2 Re(sum_n C_n B̄_n Ā_n^l),     y = K * u + D u          (causal FFT convolution)

The Vandermonde powers Ā^l are split as Ā^(r S + s) = Ā^(r S) Ā^s with S ~ sqrt(T), so K, the
final state and the contribution of an initial state are each one batched matmul over n with
O(N sqrt(T)) powers in memory instead of an [C, N/2, T] tensor (1 GB at d=512, T=8192).
Decoding steps the recurrence with the state stored as real [B, C, N/2, 2] (real, imaginary) and
complex products written out in real arithmetic, so the step exports to ONNX.

The layer (the paper's S4D block): y = out(GELU(ssm(in(x)) + D in(x))), with ``out`` a Linear to
2d followed by a GLU (the paper's default ``output_linear``) or a plain Linear (``glu: false``).

Padding: a time-invariant system cannot skip a step (Ā is applied at every position), so padded
positions enter as zero inputs. That is exact for left padding from a zero initial state (zeros
keep the state at zero) and for right padding in training (causal), but a padded position in the
middle of a sequence still decays the state by one step. By design S4D is not selective: nothing
in Ā, B̄, C depends on the input, which is why it fails selective-copying tasks that Mamba solves.

Options (``mixer_options``): ``d_state`` (N, default 64), ``dt_min`` / ``dt_max`` (1e-3 / 1e-1),
``glu`` (True).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.ops.fftconv import fftconv


def _split_powers(dt_a: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Ā^l for l < length as a product of two small tables: fine[c, n, s] = exp(s dtA) for s < S and
    coarse[c, n, r] = exp(r S dtA) for r < R, R S >= length, so Ā^(r S + s) = coarse[r] fine[s].
    Each is an exact power (no repeated multiplication), and |.| <= 1 since Re(dtA) < 0."""
    block = max(1, math.isqrt(max(length - 1, 0)) + 1)
    rows = -(-length // block)
    s = torch.arange(block, device=dt_a.device, dtype=dt_a.real.dtype)
    r = torch.arange(rows, device=dt_a.device, dtype=dt_a.real.dtype) * block
    return torch.exp(dt_a[..., None] * s), torch.exp(dt_a[..., None] * r), block


@register_mixer("s4d")
class S4D(Mixer):
    bidirectional = False
    options = {"d_state": 64, "dt_min": 1e-3, "dt_max": 1e-1, "glu": True}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        d = cfg.d_model
        self.d_state = int(opts["d_state"])
        if self.d_state < 2 or self.d_state % 2:
            raise ValueError(f"s4d d_state={self.d_state} must be even: it counts conjugate pairs")
        n = self.d_state // 2
        dt_min, dt_max = float(opts["dt_min"]), float(opts["dt_max"])
        self.glu = bool(opts["glu"])

        self.in_proj = nn.Linear(d, d, bias=cfg.bias)
        self.log_dt = nn.Parameter(torch.rand(d) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        # S4D-Lin: A_n = -1/2 + i pi n, real part kept negative through A_re = -exp(log_A_real)
        self.log_A_real = nn.Parameter(torch.full((d, n), math.log(0.5)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(n, dtype=torch.float32).repeat(d, 1))
        # C ~ complex standard normal (E|C|^2 = 1), stored as (real, imaginary)
        self.C = nn.Parameter(torch.randn(d, n, 2) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(d))
        self.out_proj = nn.Linear(d, 2 * d if self.glu else d, bias=cfg.bias)
        for p in (self.log_dt, self.log_A_real, self.A_imag, self.C):
            p._no_weight_decay = True  # the paper trains the SSM parameters without weight decay

    def init_state(self, batch: int, device, dtype) -> State:
        return {"ssm": torch.zeros(batch, self.D.shape[0], self.d_state // 2, 2, device=device, dtype=dtype)}

    # -- discretisation --------------------------------------------------------------------------

    def _discrete(self) -> tuple[torch.Tensor, ...]:
        """ZOH in real arithmetic: (dtA, Ā, B̄) as (real, imaginary) pairs, each [C, N/2], in at
        least float32 (bf16 powers lose the slow modes). B̄ = (Ā - 1) / A = (Ā - 1) conj(A) / |A|^2."""
        work = self._work_dtype()
        dt = self.log_dt.to(work).exp()[:, None]
        a_re, a_im = -self.log_A_real.to(work).exp(), self.A_imag.to(work)
        dta_re, dta_im = dt * a_re, dt * a_im
        mag = dta_re.exp()
        abar_re, abar_im = mag * torch.cos(dta_im), mag * torch.sin(dta_im)
        den = a_re * a_re + a_im * a_im
        bbar_re = ((abar_re - 1) * a_re + abar_im * a_im) / den
        bbar_im = (abar_im * a_re - (abar_re - 1) * a_im) / den
        return dta_re, dta_im, abar_re, abar_im, bbar_re, bbar_im

    def _work_dtype(self) -> torch.dtype:
        return torch.promote_types(self.log_dt.dtype, torch.float32)

    def _c(self) -> torch.Tensor:
        """C as a complex [C, N/2] tensor."""
        return torch.view_as_complex(self.C.to(self._work_dtype()).contiguous())

    def kernel(self, length: int) -> torch.Tensor:
        """K[c, l] = 2 Re(sum_n C_n B̄_n Ā_n^l) for l < length: [C, length] (S4D's Vandermonde)."""
        dta_re, dta_im, _, _, bbar_re, bbar_im = self._discrete()
        c = self._c()
        fine, coarse, _ = _split_powers(torch.complex(dta_re, dta_im), length)
        cb = c * torch.complex(bbar_re, bbar_im)
        k = torch.einsum("cnr,cns->crs", cb[..., None] * coarse, fine)  # [C, R, S]: row r holds lags r S + s
        return 2 * k.real.reshape(k.shape[0], -1)[:, :length]

    # -- forward ---------------------------------------------------------------------------------

    def forward(self, x, state=None, mask=None, offset=0):
        u = self.in_proj(x)
        if mask is not None:  # padding enters as zero input (it cannot skip the time-invariant decay)
            u = u * mask[..., None].to(u.dtype)
        if state is not None and x.shape[1] == 1:
            y, h = self._step(u[:, 0], state["ssm"])
            y, new_state = y[:, None], {"ssm": h}
        else:
            y = fftconv(u, self.kernel(x.shape[1]), self.D)
            new_state = None
            if state is not None:
                y0, h = self._from_state(u, state["ssm"])
                y, new_state = y + y0, {"ssm": h}
        y = self.out_proj(F.gelu(y))
        return (F.glu(y, dim=-1) if self.glu else y), new_state

    def _from_state(self, u: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A multi-token call that continues from h0 [B, C, N/2, 2]: the outputs h0 adds,
        2 Re(C Ā^(t+1) h0), and the state after the call, Ā^T h0 + sum_j Ā^(T-1-j) B̄ u_j.
        Both as matmuls over the split powers (no per-token loop)."""
        b, t, ch = u.shape
        dta_re, dta_im, abar_re, abar_im, bbar_re, bbar_im = self._discrete()
        cdtype = torch.complex128 if dta_re.dtype == torch.float64 else torch.complex64
        dt_a = torch.complex(dta_re, dta_im)
        abar, bbar = torch.complex(abar_re, abar_im), torch.complex(bbar_re, bbar_im)
        c = self._c()
        state_dtype = h0.dtype
        h0 = torch.view_as_complex(h0.to(dta_re.dtype).contiguous())  # [B, C, N/2]
        fine, coarse, block = _split_powers(dt_a, t)
        rows = coarse.shape[-1]

        # outputs: 2 Re sum_n (C Ā h0)_n Ā^(r S + s)
        lead = (c * abar) * h0  # [B, C, N/2]
        y0 = torch.einsum("bcnr,cns->bcrs", lead[..., None] * coarse, fine)
        y0 = 2 * y0.real.reshape(b, ch, -1)[..., :t].transpose(1, 2)

        # state: reversed inputs u_rev[m] = u[T-1-m] weighted by Ā^m, m = r S + s
        u_rev = F.pad(u.flip(1).transpose(1, 2), (0, rows * block - t)).reshape(b, ch, rows, block)
        within = torch.einsum("bcrs,cns->bcrn", u_rev.to(cdtype), fine)
        h = bbar * torch.einsum("bcrn,cnr->bcn", within, coarse) + torch.exp(dt_a * t) * h0
        return y0.to(u.dtype), torch.view_as_real(h).to(state_dtype)

    def _step(self, u: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One token, real arithmetic only: u [B, C], h [B, C, N/2, 2] -> (y [B, C], new h)."""
        _, _, abar_re, abar_im, bbar_re, bbar_im = self._discrete()
        work = abar_re.dtype
        c_re, c_im = self.C.to(work).unbind(-1)
        h_re, h_im = h.to(work).unbind(-1)
        x = u.to(work)[..., None]
        new_re = abar_re * h_re - abar_im * h_im + bbar_re * x
        new_im = abar_re * h_im + abar_im * h_re + bbar_im * x
        y = 2 * (c_re * new_re - c_im * new_im).sum(-1) + self.D.to(work) * x[..., 0]
        return y.to(u.dtype), torch.stack([new_re, new_im], dim=-1).to(h.dtype)
