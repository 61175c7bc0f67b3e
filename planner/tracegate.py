"""Keeping torch.fx tracing and model runs apart across threads.

While torch.fx traces a model it patches `nn.Module.__call__` and `__getattr__` for the whole process, so a
module run in another thread meanwhile is routed into that trace (it fails with "module is not installed as a
submodule", or corrupts the graph), and two traces at once trip over each other's patcher. `TRACE_GATE`
lets any number of model runs proceed together (`running()`), and a trace (`tracing()`) only alone: it waits
until the runs in progress finish, and new runs wait until it is done. A thread must not start a trace while
it holds `running()` (it would wait for itself).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TraceGate:
    """Many runs or one trace at a time (runs are not held back by a waiting trace, so runs may nest)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runs = 0
        self._tracer: int | None = None  # the thread tracing now
        self._depth = 0

    @contextmanager
    def running(self) -> Iterator[None]:
        """Run modules (no trace in progress in another thread meanwhile)."""
        me = threading.get_ident()
        with self._cond:
            while self._tracer is not None and self._tracer != me:
                self._cond.wait()
            self._runs += 1
        try:
            yield
        finally:
            with self._cond:
                self._runs -= 1
                self._cond.notify_all()

    @contextmanager
    def tracing(self) -> Iterator[None]:
        """Trace with torch.fx alone (re-entrant in one thread)."""
        me = threading.get_ident()
        with self._cond:
            while self._tracer not in (None, me) or (self._tracer is None and self._runs):
                self._cond.wait()
            self._tracer = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if not self._depth:
                    self._tracer = None
                self._cond.notify_all()


TRACE_GATE = TraceGate()
