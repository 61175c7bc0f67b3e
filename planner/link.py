"""Link models: how long N bytes take to cross the network between edge and cloud.

Every link has `rtt_ms` and `transfer_ms(nbytes, start_ms=0.0)` (the time from the first byte leaving until
the last byte arrives, without the RTT). `nbytes` and `start_ms` may be numpy arrays (they broadcast), so the
solver evaluates all candidates, or all start times of a trace, in one call.

- `ConstantLink`: fixed bandwidth.
- `TraceLink`: replay of a measured trace, exact for the trace's model, wrapping around at its end:
  a rate trace (`seconds, Mbit/s`: each sample is the throughput since the previous time stamp; the first
  sample lasts as long as the first gap) or a Mahimahi trace (one line per 1500-byte delivery opportunity,
  integer ms time stamps, the period is the last time stamp). A rate of 0 is an outage: a transfer waits
  for the link to come back. A trace that never delivers is rejected when loaded.
- `LiveEstimate`: bandwidth estimated from observed transfers (EWMA, or harmonic mean of the last N).

Units: `parse_bandwidth("10mbit") == 10e6` (bit/s; SI prefixes, `Ki`/`Mi`/`Gi` binary ones, a lowercase
`b`/`bit`/`bps` is bits and an uppercase `B`/`Bps`/`B/s`/`byte` is bytes) and `parse_duration("20ms") == 20.0`
(milliseconds). Link models are named in a registry: `make("constant", bandwidth="10mbit", rtt="20ms")`.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from planner.errors import LinkError

MAHIMAHI_PACKET = 1500  # bytes per delivery opportunity
MAX_BANDWIDTH_BPS = 1e15  # 1 Pbit/s: anything faster is a typo, and its arithmetic would overflow to inf/nan
TRACES_DIR = Path(__file__).parent / "traces"

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2.0**10, "mi": 2.0**20, "gi": 2.0**30}
_BIT_UNITS = {"b", "bit", "bits", "bps", "b/s", "bit/s", "bits/s"}
_BYTE_UNITS = {"B", "Bps", "B/s", "byte", "bytes", "byte/s", "bytes/s"}
_DURATIONS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "msec": 1.0, "s": 1e3, "sec": 1e3, "min": 60e3}


def _split_number(text: str, what: str) -> tuple[float, str]:
    m = re.fullmatch(_NUMBER + r"\s*(\S*)", text.strip())
    if not m:
        raise LinkError(f"cannot read {what} {text!r}: expected a number and a unit, e.g. "
                        f"{'10mbit' if what == 'bandwidth' else '20ms'}")
    return float(m.group(1)), m.group(2)


def _positive(value: float, text: object, what: str, allow_zero: bool = False) -> float:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = "non-negative" if allow_zero else "positive"
        raise LinkError(f"{what} must be a finite {need} value, got {text!r}")
    return value


def parse_bandwidth(value: str | float) -> float:
    """Bandwidth in bit/s from '10mbit', '10Mbps', '2MB/s', '500kbit' or a number (already bit/s)."""
    if not isinstance(value, str):
        return _plausible(_positive(float(value), value, "bandwidth"), value)
    number, unit = _split_number(value, "bandwidth")
    m = re.fullmatch(r"([kKmMgGtT]i?)?(.+)", unit)
    if not unit or not m:
        raise LinkError(f"bandwidth {value!r} has no unit: write e.g. '10mbit', '2MB/s' or '500kbit'")
    prefix, base = (m.group(1) or "").lower(), m.group(2)
    if base in _BIT_UNITS or base.lower() in {"bit", "bits", "bit/s", "bits/s"}:
        scale = 1.0
    elif base in _BYTE_UNITS or base.lower() in {"byte", "bytes", "byte/s", "bytes/s"}:
        scale = 8.0
    else:
        raise LinkError(f"unknown bandwidth unit {unit!r} in {value!r}: use bit/s units (bit, kbit, mbit, Mbps, "
                        f"gbit) or byte/s units (B/s, kB/s, MB/s)")
    return _plausible(_positive(number * _PREFIX[prefix] * scale, value, "bandwidth"), value)


def _plausible(bps: float, text: object) -> float:
    if bps > MAX_BANDWIDTH_BPS:
        raise LinkError(f"bandwidth {text!r} is above {MAX_BANDWIDTH_BPS:g} bit/s (1 Pbit/s): not a plausible link")
    return bps


def parse_duration(value: str | float, allow_zero: bool = False) -> float:
    """Duration in ms from '20ms', '0.5s', '150us' or a number (already ms)."""
    if not isinstance(value, str):
        return _positive(float(value), value, "duration", allow_zero)
    number, unit = _split_number(value, "duration")
    if unit not in _DURATIONS:
        raise LinkError(f"unknown duration unit {unit!r} in {value!r}: use one of {', '.join(_DURATIONS)}")
    return _positive(number * _DURATIONS[unit], value, "duration", allow_zero)


def format_bandwidth(bps: float) -> str:
    """A short human form of a bandwidth: '1.5 Mbit/s'."""
    for scale, unit in ((1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s")):
        if bps >= scale:
            return f"{bps / scale:.4g} {unit}"
    return f"{bps:.4g} bit/s"


@runtime_checkable
class Link(Protocol):
    """What the solver needs from a link model."""

    rtt_ms: float

    def transfer_ms(self, nbytes, start_ms=0.0):
        """Milliseconds to deliver `nbytes` starting at `start_ms` (without the RTT); broadcasts over arrays."""

    def describe(self) -> dict:
        """A JSON-able description (kind, parameters) for plans and logs."""


def _result(value: np.ndarray):
    return float(value) if np.ndim(value) == 0 else value


class ConstantLink:
    """A link of fixed bandwidth and round-trip time."""

    def __init__(self, bandwidth: str | float, rtt: str | float = 0.0):
        self.bandwidth_bps = parse_bandwidth(bandwidth)
        self.rtt_ms = parse_duration(rtt, allow_zero=True)

    def transfer_ms(self, nbytes, start_ms=0.0):
        """Bytes * 8 / bandwidth, in ms, whatever the start time."""
        n = np.asarray(nbytes, dtype=float)
        return _result(n * 8000.0 / self.bandwidth_bps + np.zeros_like(np.asarray(start_ms, dtype=float)))

    def describe(self) -> dict:
        return {"kind": "constant", "bandwidth_bps": self.bandwidth_bps, "rtt_ms": self.rtt_ms}

    def __repr__(self) -> str:
        return f"ConstantLink({format_bandwidth(self.bandwidth_bps)}, rtt={self.rtt_ms:g} ms)"


class TraceLink:
    """Replay of a bandwidth trace (rate samples or Mahimahi delivery opportunities), repeating forever."""

    def __init__(self, *, rtt: str | float = 0.0, name: str = "trace", durations_s=None, mbps=None,
                 mahimahi_ms=None):
        self.rtt_ms = parse_duration(rtt, allow_zero=True)
        self.name = name
        if (durations_s is None) == (mahimahi_ms is None):
            raise LinkError("TraceLink needs either rate samples (durations_s, mbps) or mahimahi_ms")
        if mahimahi_ms is not None:
            self._init_mahimahi(np.asarray(mahimahi_ms, dtype=float))
        else:
            self._init_rates(np.asarray(durations_s, dtype=float), np.asarray(mbps, dtype=float))

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_rates(cls, times_s, mbps, *, rtt: str | float = 0.0, name: str = "trace") -> TraceLink:
        """A rate trace from time stamps (s, increasing) and the throughput since the previous stamp (Mbit/s)."""
        t = np.asarray(times_s, dtype=float)
        r = np.asarray(mbps, dtype=float)
        if t.ndim != 1 or t.shape != r.shape or t.size < 2:
            raise LinkError(f"trace {name}: need at least two (time, Mbit/s) samples of equal count")
        if not np.all(np.isfinite(t)):
            raise LinkError(f"trace {name}: time stamps must be finite numbers")
        gaps = np.diff(t)
        bad = np.flatnonzero(gaps <= 0)
        if bad.size:
            raise LinkError(f"trace {name}: time stamps must increase strictly (sample {bad[0] + 2}: {t[bad[0] + 1]:g} s "
                            f"after {t[bad[0]]:g} s)")
        return cls(rtt=rtt, name=name, durations_s=np.concatenate([gaps[:1], gaps]), mbps=r)

    @classmethod
    def from_mahimahi(cls, timestamps_ms, *, rtt: str | float = 0.0, name: str = "trace") -> TraceLink:
        """A Mahimahi trace: one integer ms time stamp per 1500-byte delivery opportunity."""
        return cls(rtt=rtt, name=name, mahimahi_ms=timestamps_ms)

    @classmethod
    def load(cls, path: str | Path, *, rtt: str | float = 0.0, format: str = "auto") -> TraceLink:
        """Read a trace file ('csv': `seconds, Mbit/s` (tab, comma or space), 'mahimahi', or 'auto')."""
        path = trace_path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise LinkError(f"cannot read trace {path}: {exc}") from exc
        rows = [line.split("#", 1)[0].replace(",", " ").split() for line in text.splitlines()]
        rows = [(i + 1, r) for i, r in enumerate(rows) if r]
        if rows and not _is_number(rows[0][1][0]):
            rows = rows[1:]  # a header line
        if not rows:
            raise LinkError(f"trace {path} is empty")
        if format == "auto":
            format = "mahimahi" if all(len(r) == 1 for _, r in rows) else "csv"
        width = {"mahimahi": 1, "csv": 2}.get(format)
        if width is None:
            raise LinkError(f"unknown trace format {format!r}: use 'csv', 'mahimahi' or 'auto'")
        values = []
        for lineno, r in rows:
            if len(r) != width or not all(_is_number(v) for v in r):
                raise LinkError(f"trace {path} line {lineno}: expected {width} number(s) ({format}), got {' '.join(r)!r}")
            values.append([float(v) for v in r])
        a = np.asarray(values)
        try:
            if format == "mahimahi":
                return cls.from_mahimahi(a[:, 0], rtt=rtt, name=path.name)
            return cls.from_rates(a[:, 0], a[:, 1], rtt=rtt, name=path.name)
        except LinkError as exc:
            raise LinkError(f"{exc} (file {path})") from None

    def _init_rates(self, durations_s: np.ndarray, mbps: np.ndarray) -> None:
        if np.any(~np.isfinite(mbps)) or np.any(mbps < 0):
            raise LinkError(f"trace {self.name}: throughput must be finite and >= 0 Mbit/s")
        if np.any(mbps > MAX_BANDWIDTH_BPS / 1e6):
            raise LinkError(f"trace {self.name}: throughput {float(mbps.max()):g} Mbit/s is above "
                            f"{MAX_BANDWIDTH_BPS / 1e6:g} Mbit/s: not a plausible link")
        if not np.any(mbps > 0):
            raise LinkError(f"trace {self.name} never delivers a byte (every sample is 0 Mbit/s)")
        self.kind = "rates"
        self._seg_ms = durations_s * 1e3
        self._rate = mbps * 1e3  # bits per ms
        self._seg_start = np.concatenate([[0.0], np.cumsum(self._seg_ms)])
        self._cum_bits = np.concatenate([[0.0], np.cumsum(self._seg_ms * self._rate)])
        self.period_ms = float(self._seg_start[-1])
        self._period_bits = float(self._cum_bits[-1])

    def _init_mahimahi(self, ts: np.ndarray) -> None:
        if ts.ndim != 1 or ts.size == 0:
            raise LinkError(f"trace {self.name}: a Mahimahi trace needs at least one time stamp")
        if np.any(~np.isfinite(ts)) or np.any(ts < 0) or np.any(np.diff(ts) < 0):
            raise LinkError(f"trace {self.name}: Mahimahi time stamps must be non-negative and non-decreasing")
        if ts[-1] <= 0:
            raise LinkError(f"trace {self.name}: the last Mahimahi time stamp (the period) must be > 0 ms")
        self.kind = "mahimahi"
        self._opps = ts
        self.period_ms = float(ts[-1])
        self._at_period = int(np.count_nonzero(ts == ts[-1]))  # opportunities at the very end of a period
        self._period_bits = ts.size * MAHIMAHI_PACKET * 8.0

    # -- queries ------------------------------------------------------------------------------------
    @property
    def mean_bps(self) -> float:
        """Average bandwidth over one period, bit/s."""
        return self._period_bits / self.period_ms * 1e3

    def bandwidth_at(self, t_ms):
        """The trace's rate at time t (bit/s; for Mahimahi the average over the surrounding 100 ms)."""
        t = np.mod(np.asarray(t_ms, dtype=float), self.period_ms)
        if self.kind == "rates":
            seg = np.clip(np.searchsorted(self._seg_start, t, side="right") - 1, 0, self._rate.size - 1)
            return _result(self._rate[seg] * 1e3)
        lo, hi = t - 50.0, t + 50.0
        count = self._opportunities_before(hi) - self._opportunities_before(lo)
        return _result(count * MAHIMAHI_PACKET * 8.0 / 0.1)

    def transfer_ms(self, nbytes, start_ms=0.0):
        """Exact time to deliver `nbytes` starting at `start_ms` (ms since the trace start; wraps around)."""
        n = np.asarray(nbytes, dtype=float)
        start = np.asarray(start_ms, dtype=float)
        if np.any(n < 0) or np.any(~np.isfinite(n)):
            raise LinkError(f"cannot send a negative or non-finite number of bytes: {nbytes!r}")
        finish = self._finish_rates(n, start) if self.kind == "rates" else self._finish_mahimahi(n, start)
        return _result(np.where(n > 0, finish - start, 0.0))

    def _finish_rates(self, n: np.ndarray, start: np.ndarray) -> np.ndarray:
        base = np.floor(start / self.period_ms) * self.period_ms
        pos = start - base
        seg = np.clip(np.searchsorted(self._seg_start, pos, side="right") - 1, 0, self._rate.size - 1)
        target = self._cum_bits[seg] + (pos - self._seg_start[seg]) * self._rate[seg] + 8.0 * n
        periods = np.floor(target / self._period_bits)
        rem = target - periods * self._period_bits
        exact = (rem <= 0) & (periods > 0)  # finishes at the last delivering instant of an earlier period
        periods = np.where(exact, periods - 1, periods)
        rem = np.minimum(np.where(exact, self._period_bits, rem), self._period_bits)
        end_seg = np.clip(np.searchsorted(self._cum_bits, rem, side="left") - 1, 0, self._rate.size - 1)
        rate = self._rate[end_seg]
        within = np.where(rate > 0, (rem - self._cum_bits[end_seg]) / np.where(rate > 0, rate, 1.0), 0.0)
        return base + periods * self.period_ms + self._seg_start[end_seg] + within

    def _opportunities_before(self, t: np.ndarray) -> np.ndarray:
        """How many delivery opportunities lie in [0, t) of the unrolled trace."""
        k = np.floor(t / self.period_ms)
        r = t - k * self.period_ms
        # period k-1's opportunities stamped `period` fall at exactly k * period: not before t when r == 0
        late = np.where((r <= 0) & (k > 0), self._at_period, 0)
        return k * self._opps.size + np.searchsorted(self._opps, r, side="left") - late

    def _finish_mahimahi(self, n: np.ndarray, start: np.ndarray) -> np.ndarray:
        packets = np.ceil(n / MAHIMAHI_PACKET)
        last = self._opportunities_before(start) + np.maximum(packets, 1) - 1  # global index of the last one used
        k, j = np.divmod(last, self._opps.size)
        return k * self.period_ms + self._opps[j.astype(np.int64)]

    def describe(self) -> dict:
        return {"kind": "trace", "trace": self.name, "format": self.kind, "mean_bps": self.mean_bps,
                "period_s": self.period_ms / 1e3, "rtt_ms": self.rtt_ms}

    def __repr__(self) -> str:
        return (f"TraceLink({self.name}, {self.kind}, mean {format_bandwidth(self.mean_bps)}, "
                f"period {self.period_ms / 1e3:g} s, rtt={self.rtt_ms:g} ms)")


class LiveEstimate:
    """Bandwidth estimated from the transfers the edge observes: EWMA or harmonic mean of the last `window`."""

    METHODS = ("ewma", "harmonic")

    def __init__(self, initial: str | float = "1mbit", rtt: str | float = 0.0, *, method: str = "ewma",
                 alpha: float = 0.3, window: int = 5, rtt_alpha: float = 0.125):
        if method not in self.METHODS:
            raise LinkError(f"unknown estimate method {method!r}: use one of {', '.join(self.METHODS)}")
        if not 0 < alpha <= 1 or not 0 < rtt_alpha <= 1:
            raise LinkError(f"EWMA weights must be in (0, 1], got alpha={alpha}, rtt_alpha={rtt_alpha}")
        if window < 1:
            raise LinkError(f"harmonic-mean window must be >= 1, got {window}")
        self.method, self.alpha, self.rtt_alpha = method, alpha, rtt_alpha
        self.initial_bps = parse_bandwidth(initial)
        self.rtt_ms = parse_duration(rtt, allow_zero=True)
        self._ewma: float | None = None
        self._recent: deque[float] = deque(maxlen=window)
        self._rtt_seen = False
        self.observations = 0

    def observe(self, nbytes: int, elapsed_ms: float) -> float:
        """Record one transfer (`nbytes` in `elapsed_ms`, RTT excluded); returns the new estimate, bit/s."""
        if not nbytes > 0 or not elapsed_ms > 0 or not math.isfinite(elapsed_ms):
            raise LinkError(f"an observed transfer needs bytes > 0 and time > 0, got {nbytes} B in {elapsed_ms} ms")
        sample = nbytes * 8000.0 / elapsed_ms
        self._ewma = sample if self._ewma is None else self.alpha * sample + (1 - self.alpha) * self._ewma
        self._recent.append(sample)
        self.observations += 1
        return self.bandwidth_bps

    def observe_rtt(self, rtt_ms: float) -> float:
        """Fold one measured round-trip time into the RTT estimate (EWMA, as TCP's SRTT)."""
        rtt = _positive(float(rtt_ms), rtt_ms, "observed RTT", allow_zero=True)
        self.rtt_ms = rtt if not self._rtt_seen else self.rtt_alpha * rtt + (1 - self.rtt_alpha) * self.rtt_ms
        self._rtt_seen = True
        return self.rtt_ms

    @property
    def bandwidth_bps(self) -> float:
        """The current estimate (the initial value until something was observed)."""
        if not self._recent:
            return self.initial_bps
        if self.method == "ewma":
            return float(self._ewma)
        return len(self._recent) / sum(1.0 / s for s in self._recent)

    def transfer_ms(self, nbytes, start_ms=0.0):
        """Bytes * 8 / the current estimate, in ms."""
        return ConstantLink(self.bandwidth_bps, self.rtt_ms).transfer_ms(nbytes, start_ms)

    def describe(self) -> dict:
        return {"kind": "live", "method": self.method, "bandwidth_bps": self.bandwidth_bps, "rtt_ms": self.rtt_ms,
                "observations": self.observations}

    def __repr__(self) -> str:
        return f"LiveEstimate({self.method}, {format_bandwidth(self.bandwidth_bps)}, rtt={self.rtt_ms:g} ms)"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def available_traces() -> list[str]:
    """Names of the traces shipped with planner (in planner/traces/)."""
    return sorted(p.name for p in TRACES_DIR.iterdir() if p.suffix in {".tsv", ".csv", ".mahimahi"})


def trace_path(name: str | Path) -> Path:
    """A trace file: an existing path, or the name of a shipped trace (with or without its suffix)."""
    path = Path(name)
    if path.exists():
        return path
    for candidate in (TRACES_DIR / str(name), *(TRACES_DIR / f"{name}{s}" for s in (".tsv", ".csv", ".mahimahi"))):
        if candidate.is_file():
            return candidate
    raise LinkError(f"no trace file {str(name)!r} (and no shipped trace of that name; shipped: "
                    f"{', '.join(available_traces())})")


def _trace(path: str | Path, rtt: str | float = 0.0, format: str = "auto") -> TraceLink:
    return TraceLink.load(path, rtt=rtt, format=format)


LINKS: dict[str, Callable[..., Link]] = {"constant": ConstantLink, "trace": _trace, "live": LiveEstimate}


def make(kind: str, **kwargs) -> Link:
    """A link model by name: make('constant', bandwidth='10mbit', rtt='20ms'), make('trace', path=...), 'live'."""
    factory = LINKS.get(kind)
    if factory is None:
        raise LinkError(f"unknown link model {kind!r}: use one of {', '.join(LINKS)}")
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise LinkError(f"bad arguments for link model {kind!r}: {exc}") from None
