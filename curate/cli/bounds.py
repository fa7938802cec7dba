"""argparse types that refuse a value out of its option's range, so that `--top-p 5` or `--slots 0`
ends in one usage line naming the option instead of a run that does nothing or something else.

Each type keeps its bounds as fields: the CLI guard test reads them to derive the values to refuse.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Number:
    """An int or a finite float within [low, high]; an end is left out where `open_low`/`open_high`."""

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def range(self) -> str:
        """The accepted range in words: "at least 1", "more than 0", "in (0, 1]"."""
        if self.high is None:
            return f"{'more than' if self.open_low else 'at least'} {self.low}"
        return f"in {'(' if self.open_low else '['}{self.low}, {self.high}{')' if self.open_high else ']'}"

    def holds(self, value: float) -> bool:
        """Whether a parsed value lies within the bounds."""
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below

    def __call__(self, text: str) -> float:
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {self.kind.__name__} value: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if not self.holds(value):
            raise argparse.ArgumentTypeError(f"must be {self.range()}, got {text}")
        return value


@dataclass(frozen=True)
class Text:
    """A string that is not empty (nor only space): an empty data set name filters everything out."""

    def __call__(self, text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"must not be empty, got {text!r}")
        return text


def at_least(low: int) -> Number:
    """A whole number of at least `low`."""
    return Number(int, low)


COUNT = at_least(1)
NON_NEGATIVE = Number(float, 0)
POSITIVE = Number(float, 0, open_low=True)
TOP_P = Number(float, 0, 1, open_low=True)
NAME = Text()
