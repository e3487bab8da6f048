"""The Regression Transformer's numbers: a property value written as one token per digit, each
token naming its digit and its decimal place (``_8_-1`` is 0.8), so the model reads magnitude
from the vocabulary and a masked number is filled digit by digit.

A molecule becomes ``<qed> _0_0 _8_-1 _9_-2 _0_-3 <logp> _+_ _0_1 _3_0 _4_-1 _5_-2 | C C ( = O ) ...``:
every property, in a fixed layout, then the separator, then the atom-level SMILES.
"""
from __future__ import annotations

from dataclasses import dataclass

SEPARATOR, MASK = "|", "<mask>"
SIGNS = ("_+_", "_-_")


@dataclass(frozen=True)
class NumberFormat:
    """How one property is written: digits from 10**top down to 10**bottom, a sign token if the
    property can be negative; values are clipped to +-``limit`` (or what the digits can hold)."""

    name: str
    top: int
    bottom: int
    signed: bool
    limit: float = float("inf")

    @property
    def places(self) -> list[int]:
        return list(range(self.top, self.bottom - 1, -1))

    @property
    def largest(self) -> float:
        return min(self.limit, 10.0 ** (self.top + 1) - 10.0 ** self.bottom)

    def tokens(self, value: float) -> list[str]:
        """``value`` -> [<name>, (sign), digit tokens], rounded to the last place."""
        clipped = max(-self.largest if self.signed else 0.0, min(self.largest, value))
        units = round(abs(clipped) / 10.0 ** self.bottom)
        digits = str(units).zfill(len(self.places))[-len(self.places):]
        sign = [SIGNS[clipped < 0]] if self.signed else []
        return [f"<{self.name}>", *sign, *(f"_{d}_{p}" for d, p in zip(digits, self.places))]

    def value(self, tokens: list[str]) -> float:
        """The inverse of :meth:`tokens` (without the name token), clipped as :meth:`tokens` clips; a
        malformed digit counts as 0."""
        sign = -1.0 if self.signed and tokens[0] == SIGNS[1] else 1.0
        total = 0.0
        for token, place in zip(tokens[1:] if self.signed else tokens, self.places):
            parts = token.split("_")
            if len(parts) == 3 and parts[1].isdigit() and parts[2] == str(place):
                total += int(parts[1]) * 10.0 ** place
        return sign * min(total, self.largest)

    def vocabulary(self) -> list[str]:
        return [f"<{self.name}>", *(SIGNS if self.signed else ()),
                *(f"_{d}_{p}" for p in self.places for d in range(10))]

    def slots(self) -> list[list[str]]:
        """For each position after the name token, the tokens that may stand there."""
        return ([list(SIGNS)] if self.signed else []) + [[f"_{d}_{p}" for d in range(10)] for p in self.places]


#: QED lies in [0, 1]; Crippen logP of drug-like molecules in about [-5, 10]
FORMATS = {"qed": NumberFormat("qed", 0, -3, False, limit=1.0), "logp": NumberFormat("logp", 1, -2, True)}
