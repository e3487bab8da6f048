"""Positions: the registry (what a backbone accepts, clear errors), 1-D schemes unchanged, and 2-D
schemes that tell rows from columns."""
import pytest
import torch

from core.errors import UserError
from core.models import BackboneConfig
from core.nn import (
    ALL_POSITIONS, POSITIONS, AdditivePositions, LearnedPositions2d, Rotary2d, SinusoidalPositions2d, build_positions,
    position_scheme, sinusoidal_table, sinusoidal_table_2d,
)


def test_registry_holds_the_1d_schemes_backbones_accept():
    assert set(ALL_POSITIONS) == {"sinusoidal", "learned", "rope", "alibi", "none"}
    assert isinstance(build_positions("learned", 16, 8), AdditivePositions)
    assert build_positions("rope", 16, 8) is None and build_positions("none", 16, 8) is None
    assert POSITIONS["rope"].bounded and not POSITIONS["alibi"].bounded


@pytest.mark.parametrize("name, message", [("rotary", "expected one of"), ("sinusoidal_2d", "a 2-D scheme")])
def test_backbone_rejects_unknown_and_2d_positions(name, message):
    with pytest.raises(UserError, match=message):
        BackboneConfig(position=name)


def test_sinusoidal_2d_halves_are_the_row_and_column_tables():
    table = sinusoidal_table_2d((3, 5), 16)
    assert table.shape == (15, 16)
    torch.testing.assert_close(table[1 * 5 + 4, :8], sinusoidal_table(3, 8)[1])
    torch.testing.assert_close(table[1 * 5 + 4, 8:], sinusoidal_table(5, 8)[4])
    assert len({tuple(r.tolist()) for r in table}) == 15  # every cell distinct
    assert not torch.allclose(table[0 * 5 + 1], table[1 * 5 + 0])  # (0, 1) is not (1, 0)
    x = torch.zeros(2, 15, 16)
    torch.testing.assert_close(SinusoidalPositions2d(0, 16)(x, (3, 5))[1], table)
    with pytest.raises(ValueError, match="do not fill"):
        SinusoidalPositions2d(0, 16)(x, (4, 4))


def test_learned_2d_adds_a_row_and_a_column_embedding():
    torch.manual_seed(0)
    pos = LearnedPositions2d(8, 6)
    out = pos(torch.zeros(1, 12, 6), (3, 4))[0].view(3, 4, 6)
    # moving one column changes every row by the same amount: rows and columns are separate tables
    torch.testing.assert_close(out[0, 2] - out[0, 1], out[2, 2] - out[2, 1])
    assert not torch.allclose(out[0, 1], out[1, 0])
    with pytest.raises(UserError, match="exceeds"):
        pos(torch.zeros(1, 9 * 2, 6), (9, 2))


def test_rotary_2d_scores_depend_on_row_and_column_offsets():
    torch.manual_seed(0)
    rope = Rotary2d(8, 16)
    grid = (4, 4)
    q = torch.randn(1, 1, 1, 8).expand(1, 1, 16, 8)
    k = torch.randn(1, 1, 1, 8).expand(1, 1, 16, 8)
    scores = (rope(q, grid) @ rope(k, grid).transpose(-1, -2))[0, 0]  # [16, 16]
    at = lambda r, c: r * 4 + c  # noqa: E731
    # the same (row, column) offset gives the same score wherever it is
    torch.testing.assert_close(scores[at(0, 0), at(1, 2)], scores[at(2, 1), at(3, 3)])
    # one row down is not one column right
    assert not torch.allclose(scores[at(0, 0), at(1, 0)], scores[at(0, 0), at(0, 1)])
    with pytest.raises(UserError, match="divisible by 4"):
        Rotary2d(6, 16)


def test_position_scheme_lookup_by_dimension():
    assert position_scheme("rope_2d", dims=2).kind == "attention"
    with pytest.raises(UserError):
        position_scheme("rope_2d")
