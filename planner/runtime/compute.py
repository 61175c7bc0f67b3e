"""Where the edge client's compute runs: on the caller's thread, stretched K times, or under a CPU quota.

A weak edge device is emulated either deterministically (`Stretched`: every computation of t is followed by a
wait of (K - 1) t, no root needed; what `--edge-slowdown K` does) or by running its compute (head, encoder,
whole model) under a Linux CPU quota on a dedicated thread (`QuotaThread`, root; bursty for sub-ms work: a
short job after idle spends the quota's burst credit). Planning and networking stay on the caller's thread.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from concurrent.futures import Future

from planner.errors import PlannerError


class QuotaThread:
    """One thread held under a CPU quota that runs the edge's compute (emulated weak device), as the profiler's
    edge side ran; planning and networking stay on the caller's thread."""

    def __init__(self, fraction: float) -> None:
        from planner.profile.quota import check_available

        check_available()
        self.fraction = fraction
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"planner-edge-q{fraction:g}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        from planner.profile.quota import cpu_quota

        try:
            with cpu_quota(self.fraction, scope="thread"):
                self._ready.set()
                while (job := self._jobs.get()) is not None:
                    fn, args, fut = job
                    try:
                        fut.set_result(fn(*args))
                    except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                        fut.set_exception(exc)
        except BaseException as exc:  # noqa: BLE001 - the quota could not be applied: reported by __init__
            self._error = exc
            self._ready.set()

    def __call__(self, fn, *args):
        fut: Future = Future()
        self._jobs.put((fn, args, fut))
        return fut.result()

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(5.0)


def inline(fn, *args):
    """Run the edge compute on the caller's thread (no emulated weak device)."""
    return fn(*args)


def _wait(seconds: float) -> None:
    """Wait `seconds` precisely: sleep for the bulk, spin for the last fraction of a millisecond."""
    end = time.perf_counter() + seconds
    while (left := end - time.perf_counter()) > 0:
        if left > 0.003:
            time.sleep(left - 0.002)


class Stretched:
    """An emulated weak edge that is K times slower, deterministically and without root: every computation of
    t seconds is followed by a wait of (K - 1) t, so the caller sees K t (what `Profile.scaled(compute=K)` and
    `--edge-slowdown K` predict)."""

    def __init__(self, factor: float, inner=None) -> None:
        if not (math.isfinite(factor) and factor >= 1.0):
            raise PlannerError(f"edge slowdown must be a finite number >= 1, got {factor!r}")
        self.factor = float(factor)
        self.inner = inner or inline

    def __call__(self, fn, *args):
        t0 = time.perf_counter()
        out = self.inner(fn, *args)
        if self.factor > 1.0:
            _wait((self.factor - 1.0) * (time.perf_counter() - t0))
        return out

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
