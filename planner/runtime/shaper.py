"""Link shaping in user space: a token bucket per direction plus a one-way delay, so that loopback
behaves like the modelled link (`bytes * 8 / bandwidth + delay` each way).

The shaping sits on the client: `Shaper.wrap(sock)` returns a socket whose `sendall` releases each
chunk only when it would have crossed the bottleneck and the delay (uplink), and whose `recv` hands
received bytes to the caller only when they would have arrived (downlink). The server needs no
change and its timings stay pure compute. Each direction has its own bucket (full duplex); all
connections of one `Shaper` share its buckets, as they would share a real link.

Rates are in bits per second: a constant, or any callable `rate_bps(t)` of the seconds elapsed
since the shaper was created (e.g. a bandwidth trace's `rate_at`); a rate of 0 is an outage.
"""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from collections.abc import Callable

from planner.errors import LinkError

RateFn = Callable[[float], float]

DEFAULT_CHUNK = 16 * 1024
_STEP_S = 0.005  # integration step for time-varying rates
_HORIZON_S = 300.0  # a trace that delivers nothing for this long never delivers (callers time out first)


class TokenBucket:
    """One direction of the link: schedules when bytes finish crossing a bottleneck of the given rate.

    Virtual-time token bucket (GCRA): the link is busy until `self.busy_until`; bytes offered at
    `now` start at max(now, busy_until) and take `nbytes * 8 / rate` seconds; up to `burst_bytes`
    may go ahead of that schedule after the link was idle. The default burst of 0 gives pure
    serialization at the rate, which is what the latency model assumes.
    """

    def __init__(self, rate_bps: float | RateFn, burst_bytes: int = 0, *,
                 clock: Callable[[], float] = time.monotonic, t0: float | None = None) -> None:
        if not callable(rate_bps):
            rate = float(rate_bps)
            if not (math.isfinite(rate) and rate > 0):
                raise LinkError(f"shaper rate must be a positive number of bits/s, got {rate_bps!r}")
        if burst_bytes < 0:
            raise LinkError(f"burst must be >= 0 bytes, got {burst_bytes}")
        self.rate = rate_bps
        self.burst_bytes = int(burst_bytes)
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self.busy_until = -math.inf
        self._lock = threading.Lock()

    def rate_at(self, t: float) -> float:
        """Bits/s at absolute clock time `t` (0 for an outage)."""
        if not callable(self.rate):
            return float(self.rate)
        r = float(self.rate(t - self.t0))
        if not math.isfinite(r) or r < 0:
            raise LinkError(f"rate function returned {r!r} bits/s at t={t - self.t0:.3f} s")
        return r

    def schedule(self, nbytes: int, now: float | None = None) -> float:
        """Reserve the link for `nbytes` offered at `now`; return the clock time their last byte is through."""
        now = self.clock() if now is None else now
        with self._lock:
            start = max(now, self.busy_until)
            done = self._finish(start, nbytes * 8.0)
            if done < math.inf:  # bytes that never get through do not block the link for later ones
                self.busy_until = done
        if self.burst_bytes:
            rate = self.rate_at(now)
            if rate > 0:
                done = max(now, done - self.burst_bytes * 8.0 / rate)
        return done

    def _finish(self, start: float, bits: float) -> float:
        if not callable(self.rate):
            return start + bits / float(self.rate)
        t = start
        while bits > 0:
            if t - start > _HORIZON_S:
                return math.inf
            rate = self.rate_at(t)
            if rate * _STEP_S >= bits:
                return t + bits / rate
            bits -= rate * _STEP_S
            t += _STEP_S
        return t


class Shaper:
    """A full-duplex link: `rate_bps` up (edge -> cloud), `down_rate_bps` down (default: same), `delay_ms` each way."""

    def __init__(self, rate_bps: float | RateFn, delay_ms: float = 0.0, *, down_rate_bps: float | RateFn | None = None,
                 burst_bytes: int = 0, chunk_bytes: int = DEFAULT_CHUNK,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not (math.isfinite(delay_ms) and delay_ms >= 0):
            raise LinkError(f"one-way delay must be >= 0 ms, got {delay_ms!r}")
        if chunk_bytes < 1:
            raise LinkError(f"chunk size must be >= 1 byte, got {chunk_bytes}")
        t0 = clock()
        self.up = TokenBucket(rate_bps, burst_bytes, clock=clock, t0=t0)
        self.down = TokenBucket(rate_bps if down_rate_bps is None else down_rate_bps, burst_bytes, clock=clock, t0=t0)
        self.delay_s = delay_ms / 1000.0
        self.chunk_bytes = int(chunk_bytes)
        self.clock = clock

    def wrap(self, sock: socket.socket) -> ShapedSocket:
        return ShapedSocket(sock, self)

    def connect_delay_s(self) -> float:
        """Extra time a TCP handshake takes on this link (one round trip), added by the client after connecting."""
        return 2.0 * self.delay_s

    def transfer_s(self, nbytes: int, up: bool = True) -> float:
        """Predicted one-way time of `nbytes` on an idle link at the current rate (for checks and reports)."""
        bucket = self.up if up else self.down
        now = self.clock()
        return bucket._finish(now, nbytes * 8.0) - now + self.delay_s


def sleep_until(when: float, deadline: float | None, clock: Callable[[], float] = time.monotonic) -> None:
    """Sleep until clock time `when`; raise socket.timeout at once if that is past `deadline`."""
    if deadline is not None and when > deadline:
        raise TimeoutError("the shaped link cannot deliver before the deadline")
    wait = when - clock()
    if wait > 0:
        time.sleep(wait)


class ShapedSocket:
    """A blocking TCP socket whose sends and receives follow a `Shaper`'s link.

    Only `sendall`, `recv` and `close` are shaped; `deadline` (clock time) bounds the waiting the
    shaper adds, on top of the socket's own timeout.
    """

    def __init__(self, sock: socket.socket, shaper: Shaper) -> None:
        self.sock = sock
        self.shaper = shaper
        self._mark = shaper.clock()  # last time the receive buffer was seen empty (or our last send)

    def sendall(self, data: bytes, deadline: float | None = None) -> None:
        offered = self.shaper.clock()  # the whole buffer is handed to the link at once
        view = memoryview(data)
        step = self.shaper.chunk_bytes
        for i in range(0, len(view), step):
            chunk = view[i:i + step]
            arrive = self.shaper.up.schedule(len(chunk), offered) + self.shaper.delay_s
            sleep_until(arrive, deadline, self.shaper.clock)
            self.sock.sendall(chunk)
        self._mark = self.shaper.clock()

    def recv(self, n: int, deadline: float | None = None) -> bytes:
        # Bytes found waiting arrived while we slept on earlier ones, at the earliest when the buffer
        # was last seen empty; bytes we had to block for arrived now.
        waiting = bool(select.select([self.sock], [], [], 0)[0])
        data = self.sock.recv(min(n, self.shaper.chunk_bytes))
        if not waiting:
            self._mark = self.shaper.clock()
        if data:
            arrive = self.shaper.down.schedule(len(data), self._mark) + self.shaper.delay_s
            sleep_until(arrive, deadline, self.shaper.clock)
        return data

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
