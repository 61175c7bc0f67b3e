"""Where the edge client's compute runs: on the caller's thread, or on one thread held under a CPU quota.

A weak edge device is emulated by running its compute (head, encoder, whole model) under a Linux CPU quota
on a dedicated thread, as the profiler's edge side ran; planning and networking stay on the caller's thread.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future


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
