"""What an option accepts, written once: option dataclasses check themselves with it and the CLI reuses it.

A field of an options dataclass carries its rule in its metadata (`field(default=..., metadata=rule(...))`);
`check_fields(self)` in the class's `__post_init__` checks (and normalizes) every such field, raising
`OptionError` with one line, "NAME must be WHAT, got VALUE". `planner.cli.checks.option(cls, name)` makes the
argparse type of a flag from the same rule, so `planner plan/run/serve/profile` and `planner.run()` accept and
refuse the same values with the same message. Torch-free.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, fields

from planner.errors import PlannerError


class OptionError(PlannerError):
    """An option (keyword or flag) outside what it accepts."""


def show(value) -> str:
    """A value as messages print it: numbers without a trailing '.0', strings quoted."""
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


@dataclass(frozen=True)
class Number:
    """A finite number (an integer with `integer`) in [low, high] (`open_low`/`open_high`: the bound excluded);
    None too with `none`."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    integer: bool = False
    none: bool = False
    unit: str = ""  # what the number counts, for the message ("seconds", "percentage points")

    def describe(self) -> str:
        what = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            what += f" in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"
        elif self.low is not None:
            what += f" {'>' if self.open_low else '>='} {self.low:g}"
        elif self.high is not None:
            what += f" {'<' if self.open_high else '<='} {self.high:g}"
        if self.unit:
            what += f" ({self.unit})"
        return what + (" or None" if self.none else "")

    def accepts(self, value: float) -> bool:
        lo_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        hi_ok = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return math.isfinite(value) and lo_ok and hi_ok

    def check(self, name: str, value):
        if value is None and self.none:
            return None
        try:
            if isinstance(value, bool) or isinstance(value, str):
                raise TypeError
            number = operator.index(value) if self.integer else float(value)
        except (TypeError, ValueError):
            raise OptionError(f"{name} must be {self.describe()}, got {show(value)}") from None
        if not self.accepts(number):
            raise OptionError(f"{name} must be {self.describe()}, got {show(value)}")
        return number

    def parse(self, text: str):
        """A command-line value: an int or float spelling (a bad spelling is refused by `check`'s message)."""
        for kind in (int, float) if self.integer else (float,):
            try:
                return kind(text)
            except ValueError:
                continue
        return text

    def bad_values(self) -> list:
        """Values this rule refuses (the tests walk them): past each bound, and not finite."""
        out: list = [math.nan] if not self.integer else [1.5]
        if self.low is not None:
            out.append(self.low if self.open_low else self.low - 1)
        if self.high is not None:
            out.append(self.high if self.open_high else self.high + 1)
        if not self.integer and self.high is None:
            out.append(math.inf)
        return out


@dataclass(frozen=True)
class Choice:
    """One of `values` (None too with `none`)."""

    values: tuple[str, ...]
    none: bool = False

    def describe(self) -> str:
        return "one of " + ", ".join(self.values) + (" or None" if self.none else "")

    def check(self, name: str, value):
        if value is None and self.none:
            return None
        if value not in self.values:
            raise OptionError(f"{name} must be {self.describe()}, got {show(value)}")
        return str(value)

    def parse(self, text: str) -> str:
        return text

    def bad_values(self) -> list:
        return ["nonsense"]


def rule(r: Number | Choice) -> dict:
    """The metadata of a dataclass field checked by `r`."""
    return {"rule": r}


def rule_of(cls, name: str) -> Number | Choice:
    """The rule of field `name` of the dataclass `cls`."""
    for f in fields(cls):
        if f.name == name and "rule" in f.metadata:
            return f.metadata["rule"]
    raise KeyError(f"{cls.__name__}.{name} has no rule")


def check_fields(obj) -> None:
    """Check every ruled field of the dataclass `obj` (frozen ones too), storing the normalized value."""
    for f in fields(obj):
        r = f.metadata.get("rule")
        if r is not None:
            object.__setattr__(obj, f.name, r.check(f.name, getattr(obj, f.name)))


# Shared rules
SECONDS = Number(0, open_low=True, unit="seconds")
COUNT = Number(1, integer=True)
FRACTION = Number(0, 1, open_low=True)
SHARE = Number(0, 1)
