"""Building blocks shared by every backbone."""
from core.nn.causal_conv import CausalConv1d
from core.nn.dropout import Dropout, byte_dropout
from core.nn.embedding import TokenEmbedding
from core.nn.init import KeepInitLinear, dt_bias
from core.nn.masks import padding_mask
from core.nn.mlp import GeluMLP, SwiGLU, make_mlp
from core.nn.norms import make_norm
from core.nn.patches import PatchEmbed1d, PatchEmbed2d, patchify1d, patchify2d, unpatchify1d, unpatchify2d
from core.nn.positions import (
    ADDITIVE, ALL_POSITIONS, POSITIONS, RELATIVE, AdditivePositions, LearnedPositions2d, Rotary, Rotary2d,
    SinusoidalPositions2d, alibi_slopes, build_positions, position_scheme, register_position, sinusoidal_table,
    sinusoidal_table_2d,
)

__all__ = [
    "ADDITIVE", "ALL_POSITIONS", "RELATIVE", "AdditivePositions", "CausalConv1d", "Dropout", "byte_dropout", "GeluMLP", "KeepInitLinear", "Rotary", "SwiGLU",
    "TokenEmbedding", "alibi_slopes", "dt_bias", "make_mlp", "make_norm", "padding_mask", "sinusoidal_table",
    "POSITIONS", "LearnedPositions2d", "PatchEmbed1d", "PatchEmbed2d", "Rotary2d", "SinusoidalPositions2d", "build_positions",
    "patchify1d", "patchify2d", "position_scheme", "register_position", "sinusoidal_table_2d", "unpatchify1d", "unpatchify2d",
]
