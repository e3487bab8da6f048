"""Position information, chosen by name from a registry (``position: rope`` in a backbone config).

Three kinds:

* ``additive``: a table added to the input features once, by the backbone (``sinusoidal``,
  ``learned``) or, for H x W grids of patches, by the app after :mod:`core.nn.patches`
  (``sinusoidal_2d``, ``learned_2d``: rows and columns get separate halves / tables);
* ``attention``: applied inside attention to queries/keys (``rope`` rotates them, ``alibi`` adds a
  distance bias; :class:`Rotary2d` rotates by row and column for grids);
* ``none``.

Every 1-D scheme takes an absolute ``offset`` so that incremental decoding sees the same positions
as a full forward pass. A new scheme is one :func:`register_position` call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from core.errors import UserError


@dataclass(frozen=True)
class PositionScheme:
    name: str
    #: "additive" (a module adding a table to the inputs), "attention" (inside attention), "none"
    kind: str
    #: 1 for sequences (what a backbone's ``position`` takes), 2 for H x W grids
    dims: int = 1
    #: a table of ``max_len`` rows: longer inputs fail (exported graphs must cap lengths)
    bounded: bool = False
    #: additive schemes: (max_len, dim) -> module with ``forward(x, offset)`` (1-D) or
    #: ``forward(x, grid)`` (2-D)
    build: Callable[[int, int], nn.Module] | None = None


POSITIONS: dict[str, PositionScheme] = {}


def register_position(name: str, kind: str, dims: int = 1, bounded: bool = False,
                      build: Callable[[int, int], nn.Module] | None = None) -> PositionScheme:
    if name in POSITIONS:
        raise ValueError(f"position {name!r} registered twice")
    if kind not in ("additive", "attention", "none") or (kind == "additive") != (build is not None):
        raise ValueError(f"position {name!r}: kind {kind!r} needs a build function exactly when additive")
    POSITIONS[name] = scheme = PositionScheme(name, kind, dims, bounded, build)
    return scheme


def position_scheme(name: str, dims: int = 1) -> PositionScheme:
    """The registered scheme ``name`` of ``dims`` dimensions, or a UserError listing the valid ones."""
    scheme = POSITIONS.get(name)
    if scheme is None or scheme.dims != dims:
        valid = sorted(n for n, s in POSITIONS.items() if s.dims == dims)
        hint = "" if scheme is None else f" is a {scheme.dims}-D scheme" + (
            " (add it to the patches of core.nn.patches and use position: none)" if scheme.dims == 2 else "")
        raise UserError(f"position={name!r}{hint}; expected one of {valid}")
    return scheme


def build_positions(name: str, max_len: int, dim: int) -> nn.Module | None:
    """The module a backbone adds to its inputs for 1-D scheme ``name`` (None unless additive)."""
    scheme = position_scheme(name)
    return scheme.build(max_len, dim) if scheme.build is not None else None


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """The table of Vaswani et al. (2017): sin on even channels, cos on odd ones."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class AdditivePositions(nn.Module):
    """Sinusoidal (fixed) or learned absolute position embeddings, added to the input features."""

    def __init__(self, kind: str, max_len: int, dim: int):
        super().__init__()
        self.kind = kind
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        else:
            self.register_buffer("table", sinusoidal_table(max_len, dim), persistent=False)

    def forward(self, x: torch.Tensor, offset: int | torch.Tensor = 0) -> torch.Tensor:
        t = x.shape[1]
        if isinstance(offset, torch.Tensor):  # traced decoding: offset is a graph input
            idx = offset + torch.arange(t, device=x.device)
            return x + self.table[idx].to(x.dtype)
        if offset + t > self.table.shape[0]:
            raise ValueError(f"sequence of length {offset + t} exceeds max_len={self.table.shape[0]}")
        return x + self.table[offset : offset + t].to(x.dtype)


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021), half-split layout as in GPT-NeoX / Llama."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, offset: int | torch.Tensor = 0) -> torch.Tensor:
        """x: [B, H, T, Dh]."""
        t = x.shape[-2]
        if isinstance(offset, torch.Tensor):
            idx = offset + torch.arange(t, device=x.device)
            cos, sin = self.cos[idx], self.sin[idx]
        else:
            if offset + t > self.cos.shape[0]:
                raise ValueError(f"sequence of length {offset + t} exceeds max_len={self.cos.shape[0]}")
            cos, sin = self.cos[offset : offset + t], self.sin[offset : offset + t]
        return rotate_half_split(x, cos, sin)


def rotate_half_split(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + D/2) of ``x`` [..., T, D] by the angles whose cos/sin are [T, D/2]."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Head slopes of Press et al. (2022): a geometric sequence, interleaved for non powers of two."""

    def pow2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = pow2(n_heads)
    else:
        closest = 2 ** math.floor(math.log2(n_heads))
        slopes = pow2(closest) + pow2(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


# ----------------------------------------------------------------------------- 2-D grids


def grid_coordinates(grid: tuple[int, int], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column index [H * W] of each patch in row-major order (the order of
    :class:`core.nn.patches.PatchEmbed2d`'s output)."""
    h, w = grid  # broadcast, not ``idx // w, idx % w``: symbolic sizes export without a remainder op
    rows = torch.arange(h, device=device)[:, None].expand(h, w)
    cols = torch.arange(w, device=device)[None, :].expand(h, w)
    return rows.reshape(-1), cols.reshape(-1)


def sinusoidal_table_2d(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """[H * W, dim]: the first half of the channels is the 1-D table of the row, the second half that
    of the column (as MAE / ViTDet's 2-D sin-cos embeddings)."""
    if dim % 4:
        raise UserError(f"2-D sinusoidal positions need a width divisible by 4, got {dim}")
    h, w = grid
    rows, cols = grid_coordinates(grid)
    return torch.cat([sinusoidal_table(h, dim // 2)[rows], sinusoidal_table(w, dim // 2)[cols]], 1)


class SinusoidalPositions2d(nn.Module):
    """Fixed 2-D table, computed for each grid size (images of any size)."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """x: [B, H * W, dim] patches in row-major order."""
        _check_grid(x, grid)
        return x + sinusoidal_table_2d(grid, self.dim).to(x.device, x.dtype)


class LearnedPositions2d(nn.Module):
    """A learned row embedding plus a learned column embedding (``max_len`` rows and columns at most)."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.rows = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.cols = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        _check_grid(x, grid)
        h, w = grid
        if h > self.rows.shape[0] or w > self.cols.shape[0]:
            raise UserError(f"grid {h}x{w} exceeds the {self.rows.shape[0]} rows/columns of learned 2-D positions")
        table = self.rows[:h, None, :] + self.cols[None, :w, :]  # [H, W, D]
        return x + table.reshape(h * w, -1).to(x.dtype)


class Rotary2d(nn.Module):
    """2-D RoPE (axial, as in RoFormer-V / EVA-02): the first half of each head's channels rotates by
    the row index, the second half by the column index, so q.k depends on (row, column) offsets."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 4:
            raise UserError(f"2-D RoPE needs a head dimension divisible by 4, got {head_dim}")
        self.axis = Rotary(head_dim // 2, max_len, base)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """x: [B, H, T = rows * cols, Dh]."""
        rows, cols = grid_coordinates(grid, x.device)
        if max(grid) > self.axis.cos.shape[0]:
            raise UserError(f"grid {grid[0]}x{grid[1]} exceeds max_len={self.axis.cos.shape[0]} of 2-D RoPE")
        by_row, by_col = x.chunk(2, dim=-1)
        cos, sin = self.axis.cos, self.axis.sin
        return torch.cat([rotate_half_split(by_row, cos.index_select(0, rows), sin.index_select(0, rows)),
                          rotate_half_split(by_col, cos.index_select(0, cols), sin.index_select(0, cols))], -1)


def _check_grid(x: torch.Tensor, grid: tuple[int, int]) -> None:
    if x.shape[-2] != grid[0] * grid[1]:
        raise ValueError(f"{x.shape[-2]} positions do not fill a {grid[0]}x{grid[1]} grid")


register_position("sinusoidal", "additive", bounded=True, build=lambda max_len, dim: AdditivePositions("sinusoidal", max_len, dim))
register_position("learned", "additive", bounded=True, build=lambda max_len, dim: AdditivePositions("learned", max_len, dim))
register_position("rope", "attention", bounded=True)  # (its cos/sin tables have max_len rows)
register_position("alibi", "attention")
register_position("none", "none")
register_position("sinusoidal_2d", "additive", dims=2, build=SinusoidalPositions2d)
register_position("learned_2d", "additive", dims=2, bounded=True, build=LearnedPositions2d)
register_position("rope_2d", "attention", dims=2, bounded=True)

#: the 1-D schemes by kind (what a backbone's ``position`` accepts)
ADDITIVE = tuple(n for n, s in POSITIONS.items() if s.kind == "additive" and s.dims == 1)
RELATIVE = tuple(n for n, s in POSITIONS.items() if s.kind == "attention" and s.dims == 1)
ALL_POSITIONS = tuple(n for n, s in POSITIONS.items() if s.dims == 1)
