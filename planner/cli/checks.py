"""Argument types that check flags while parsing, so a bad value is one clear line (exit 2) before any work.

Each is an argparse `type=`: it returns the parsed value or raises `argparse.ArgumentTypeError` with what was
wrong, which argparse prints as `planner CMD: error: argument --flag: ...`.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from planner.errors import PlannerError


def _number(text: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer >= low."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def int_list(low: int) -> Callable[[str], tuple[int, ...]]:
    """Comma-separated integers, each >= low, e.g. 1,4,16,64 (sorted, without repeats)."""

    def parse(text: str) -> tuple[int, ...]:
        values = [_number(t.strip(), int) for t in str(text).split(",") if t.strip()]
        if not values or min(values) < low:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers >= {low}, got {text!r}")
        return tuple(sorted(set(values)))

    parse.__name__ = f"list of integers >= {low}"
    return parse


def port(text: str, *, allow_zero: bool = False) -> int:
    """A TCP port 1..65535 (0 too, meaning any free port, when allowed)."""
    value = _number(text, int)
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range ({0 if allow_zero else 1}..65535)")
    return value


def listen_port(text: str) -> int:
    """A port to listen on: 0 (any free port) .. 65535."""
    return port(text, allow_zero=True)


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def positive_number(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def non_negative_number(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A fraction in (0, 1]."""
    value = _number(text, float)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text!r}")
    return value


def readable_file(text: str) -> str:
    """An existing, readable file."""
    path = Path(text)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text!r} is not a readable file")
    return text


def writable_file(text: str) -> str:
    """A file that can be created or overwritten: its directory exists and is writable, it is not a directory."""
    path = Path(text)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(parent)!r} of {text!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text!r} is not writable")
    return text


def checked(parse: Callable[[str], object]) -> Callable[[str], str]:
    """A planner parser (raising PlannerError) as an argparse check that keeps the text as given."""

    def check(text: str) -> str:
        try:
            parse(text)
        except PlannerError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    check.__name__ = getattr(parse, "__name__", "value")
    return check


def join_negative_values(argv: list[str]) -> list[str]:
    """`--flag -5mbit` -> `--flag=-5mbit`: argparse takes a value starting with '-' for a flag (and then reports
    a missing argument); no flag of planner starts with '-<digit>', so such a token is always a value."""
    out: list[str] = []
    for token in argv:
        if (out and out[-1].startswith("--") and "=" not in out[-1] and len(token) > 1 and token[0] == "-"
                and (token[1].isdigit() or token[1] == ".")):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def input_formats(text: str) -> tuple[str, ...]:
    """'jpeg50,jpeg90,webp75' -> the lossy input formats, each checked (quality 1..100); 'none' -> ()."""
    from planner.types import parse_input_format

    if text.strip().lower() == "none":
        return ()
    items = [s for s in (t.strip() for t in text.split(",")) if s]
    if not items:
        raise argparse.ArgumentTypeError("give formats such as jpeg50,jpeg90,webp75, or none")
    try:
        return tuple(dict.fromkeys(parse_input_format(s) for s in items))
    except PlannerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def device(text: str) -> str:
    """A device spelling: auto, cpu, cuda or cuda:N (whether it exists here is checked when it is used)."""
    from planner.devices import parse_device

    try:
        return parse_device(text)
    except PlannerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def option(cls, name: str, read: Callable[[str], object] | None = None) -> Callable[[str], object]:
    """The argparse type of the flag for field `name` of the options dataclass `cls` (EdgeOptions, ServerOptions,
    ProfileSettings): the field's own rule, so the flag and the Python keyword refuse the same values with the
    same message. `read` turns the text into the value first (e.g. '64MiB' -> bytes; a PlannerError refuses)."""
    from planner.rules import rule_of

    r = rule_of(cls, name)

    def parse(text: str):
        try:
            return r.check(name, (read or r.parse)(text))
        except PlannerError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    parse.option = (cls, name)  # the tests walk the flags that carry an option's rule
    return parse


def default(cls, name: str):
    """The default of field `name` of the options dataclass `cls` (one place for a flag's default)."""
    from dataclasses import fields

    return next(f.default for f in fields(cls) if f.name == name)
