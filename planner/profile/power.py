"""The edge's power: what a profile records (`device.power`), where it came from, and RAPL measurement.

A profile's `device` object may carry `power = {"active_w": W, "idle_w": W, "source": S}` (an extra device
key, so older profiles and older planners read it unchanged). `source` says where the figures come from:

- `measured`: a Linux powercap (RAPL) energy counter read around the profiling runs (`Rapl`): the package's
  average power while the model ran (active) and while the process slept (idle);
- `declared`: the user said so (`planner profile --edge-power-w ACTIVE[,IDLE]`);
- `assumed`: nothing measured or declared: `config.DEFAULT_EDGE_ACTIVE_W` / `DEFAULT_EDGE_IDLE_W`.

Torch-free (the solver reads it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from planner.config import DEFAULT_EDGE_ACTIVE_W, DEFAULT_EDGE_IDLE_W
from planner.errors import ProfileError

SOURCES = ("measured", "declared", "assumed")
POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class EdgePower:
    """Edge power in watts while computing (`active_w`) and while waiting for the cloud (`idle_w`)."""

    active_w: float
    idle_w: float
    source: str = "declared"

    def __post_init__(self) -> None:
        for name in ("active_w", "idle_w"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ProfileError(f"edge power {name} must be a finite number of watts >= 0, got {v!r}")
        if self.source not in SOURCES:
            raise ProfileError(f"edge power source must be one of {', '.join(SOURCES)}, got {self.source!r}")

    def to_dict(self) -> dict:
        return {"active_w": float(self.active_w), "idle_w": float(self.idle_w), "source": self.source}

    @classmethod
    def from_dict(cls, v: object, where: str = "device.power") -> EdgePower:
        """Read `device.power`; a malformed one is a ProfileError naming the field."""
        if not isinstance(v, dict) or not {"active_w", "idle_w"} <= set(v) or set(v) - {"active_w", "idle_w",
                                                                                         "source", "note"}:
            raise ProfileError(f"field {where}: expected {{active_w, idle_w, source}}, got {v!r}")
        try:
            return cls(v["active_w"], v["idle_w"], v.get("source", "declared"))
        except ProfileError as exc:
            raise ProfileError(f"field {where}: {exc}") from None

    def __str__(self) -> str:
        return f"{self.active_w:g} W active, {self.idle_w:g} W idle ({self.source})"


ASSUMED = EdgePower(DEFAULT_EDGE_ACTIVE_W, DEFAULT_EDGE_IDLE_W, "assumed")


def parse_power(text: str) -> EdgePower:
    """'2.5' or '2.5,0.4' (watts, ACTIVE[,IDLE]) -> a declared EdgePower; IDLE defaults to the assumed idle
    power (capped at ACTIVE)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or len(values) != len(parts):
        raise ProfileError(f"edge power {text!r} is not ACTIVE[,IDLE] in watts, e.g. 2.5,0.4")
    idle = values[1] if len(values) == 2 else min(DEFAULT_EDGE_IDLE_W, values[0])
    return EdgePower(values[0], idle, "declared")


def profile_power(profile) -> EdgePower:
    """The edge power a profile records (`device.power`), or the assumed default when it records none."""
    v = (profile.device or {}).get("power")
    return ASSUMED if v is None else EdgePower.from_dict(v, f"device.power of {profile.name}")


class Rapl:
    """The package energy counters of Linux powercap (intel-rapl, also on AMD), summed over packages.

    `available()` says whether they can be read (often root-only, absent in VMs and containers); `why` says
    why not."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root if root is not None else POWERCAP)
        self.zones: list[Path] = []
        self.why: str | None = None
        try:
            zones = sorted(p for p in self.root.glob("*rapl:*") if p.name.count(":") == 1)
        except OSError as exc:
            zones = []
            self.why = f"cannot list {self.root}: {exc}"
        for z in zones:
            try:
                int((z / "energy_uj").read_text())
                self.zones.append(z)
            except (OSError, ValueError) as exc:
                self.why = f"{z / 'energy_uj'} is not readable ({exc.__class__.__name__}; often root-only)"
        if not self.zones and self.why is None:
            self.why = f"no RAPL package zone under {self.root} (not exposed on this machine or VM)"

    def available(self) -> bool:
        return bool(self.zones)

    def _read(self) -> list[int]:
        return [int((z / "energy_uj").read_text()) for z in self.zones]

    def _ranges(self) -> list[int]:
        out = []
        for z in self.zones:
            try:
                out.append(int((z / "max_energy_range_uj").read_text()))
            except (OSError, ValueError):
                out.append(2**32)
        return out

    def watts(self, fn: Callable[[], object], min_seconds: float = 0.5) -> float:
        """Average package power (W) while `fn` runs, repeated until `min_seconds` passed (counter wrap-around
        handled)."""
        before, t0 = self._read(), time.perf_counter()
        while True:
            fn()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds:
                break
        after = self._read()
        joules = sum(((a - b) % r) / 1e6 for a, b, r in zip(after, before, self._ranges(), strict=True))
        return joules / elapsed

    def measure(self, fn: Callable[[], object], min_seconds: float = 0.5) -> EdgePower:
        """Active power while `fn` runs and idle power while sleeping as long: a measured EdgePower."""
        active = self.watts(fn, min_seconds)
        idle = self.watts(lambda: time.sleep(0.05), min_seconds)
        return EdgePower(round(active, 4), round(min(idle, active), 4), "measured")
