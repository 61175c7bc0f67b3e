"""Dynamic batching for the cloud server: requests from any connections that arrive within a short delay run
their decoder + tail once per group of the same candidate (Triton's `dynamic_batching`, Ray's `@serve.batch`).

`BatchSettings` is the whole configuration (delay, most inputs per batch; 0 ms = off). `Batcher` lives on the
server's event loop: the first request of a batch starts the delay, the batch leaves when the delay is over or
`max_inputs` inputs wait, and one worker thread runs it with `run_batch`. While every worker computes, a batch
whose delay is over keeps collecting and leaves as soon as a worker is free (in the pool's queue it could not
grow), so the batches grow with the load; a request reaching an idle server (nothing computing, nothing waiting)
starts at once, so a lone edge pays no delay. Each request keeps its own future, so
every reply goes to its own connection with its own request id; a request that fails (bad payload, a reply too
large) fails alone, and one whose connection gave up (compute timeout) is dropped from a batch not yet started.
`run_batch` groups by the handler's `infer_batch` when it has one (`CloudHandler`: decoded payloads of one cut,
coder, bits and width are stacked and run at once), else it calls `infer` per request.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from planner.config import DEFAULT_BATCH_DELAY_MS, DEFAULT_BATCH_MAX
from planner.errors import PlannerError


@dataclass(frozen=True)
class BatchSettings:
    """How the server batches: wait up to `delay_ms` after a batch's first request (0: no batching) for at most
    `max_inputs` inputs in all (a request carrying more runs alone)."""

    delay_ms: float = DEFAULT_BATCH_DELAY_MS
    max_inputs: int = DEFAULT_BATCH_MAX

    def __post_init__(self) -> None:
        delay = self.delay_ms
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
            raise PlannerError(f"batch delay must be a finite number of ms >= 0 (0: off), got {delay!r}")
        if delay > 10_000:
            raise PlannerError(f"batch delay of {delay} ms is beyond 10 s: a request would wait longer than it runs")
        if isinstance(self.max_inputs, bool) or not isinstance(self.max_inputs, int) or self.max_inputs < 1:
            raise PlannerError(f"batch max must be a positive integer of inputs, got {self.max_inputs!r}")

    @property
    def enabled(self) -> bool:
        return self.delay_ms > 0 and self.max_inputs > 1

    @classmethod
    def off(cls) -> BatchSettings:
        return cls(delay_ms=0.0)


@dataclass(eq=False)
class Pending:
    """One request waiting in (or run by) a batch; `future` resolves to its RESULT frame or its error."""

    msg: Any  # protocol.Infer
    inputs: int
    received: float  # perf_counter when its last byte arrived
    future: asyncio.Future
    flushed: float = 0.0  # perf_counter when its batch left the queue
    timings: dict = field(default_factory=dict)


def run_batch(handler, payloads: list[bytes]) -> list[tuple[Any, dict] | BaseException]:
    """Per payload (scores, timings) or the exception it raised: `handler.infer_batch` when it has one, else one
    `handler.infer` each."""
    batch = getattr(handler, "infer_batch", None)
    if batch is not None and len(payloads) > 1:
        return batch(payloads)
    out: list[tuple[Any, dict] | BaseException] = []
    for payload in payloads:
        try:
            out.append(handler.infer(payload))
        except Exception as exc:  # noqa: BLE001 - each request fails alone; the server maps it to an ERROR
            out.append(exc)
    return out


class Batcher:
    """Collects INFER requests on the event loop and runs them in batches on `pool`.

    `reply(msg, received, started, result, extra)` runs in the worker thread for each request: it turns the
    handler's (scores, timings) into the RESULT frame (and enforces the reply limit); `extra` holds the batch
    timings (`batch_wait_ms`, `batch_size`)."""

    def __init__(self, handler, settings: BatchSettings, pool, reply: Callable[..., bytes], workers: int = 1) -> None:
        if not settings.enabled:
            raise PlannerError("a Batcher needs batching on (delay_ms > 0 and max_inputs > 1)")
        self.handler, self.settings, self.pool, self.reply = handler, settings, pool, reply
        self.workers = max(1, int(workers))  # batches computing at once at most (the pool's threads)
        self._running = 0
        self._due = False  # the delay is over, but every worker was busy
        self.batches = 0  # batches run
        self.batched = 0  # requests run in them
        self._pending: list[Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()

    def submit(self, msg, inputs: int, received: float) -> asyncio.Future:
        """Queue one request; the future resolves to its RESULT frame (bytes) or raises its error."""
        loop = asyncio.get_running_loop()
        item = Pending(msg, max(1, int(inputs)), received, loop.create_future())
        self._pending.append(item)
        if self._running == 0 and len(self._pending) == 1:
            self._flush()  # an idle server starts a lone request at once: batches form only while it computes
        elif sum(p.inputs for p in self._pending) >= self.settings.max_inputs:
            self._flush()
        elif self._timer is None and not self._due:
            self._timer = loop.call_later(self.settings.delay_ms / 1000.0, self._flush)
        return item.future

    def _flush(self) -> None:
        """Send waiting requests off in batches of at most max_inputs inputs (a larger request alone), as long as a
        worker is free; the rest wait for the next free worker (`_due`)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = [p for p in self._pending if not p.future.done()]  # done: its connection gave up meanwhile
        while self._pending and self._running < self.workers:
            batch, total = [], 0
            while self._pending and (not batch or total + self._pending[0].inputs <= self.settings.max_inputs):
                total += self._pending[0].inputs
                batch.append(self._pending.pop(0))
            self._start(batch)
        self._due = bool(self._pending)

    def _start(self, batch: list[Pending]) -> None:
        now = time.perf_counter()
        for item in batch:
            item.flushed = now
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.pool, self._work, batch)
        except BaseException as exc:  # the pool is shut down (server stopping): every request fails
            results = [exc] * len(batch)
        finally:
            self._running -= 1
            if self._due or sum(p.inputs for p in self._pending) >= self.settings.max_inputs:
                self._flush()  # what waited for a free worker leaves now
        self.batches += 1
        self.batched += len(batch)
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _work(self, batch: list[Pending]) -> list[bytes | BaseException]:
        """Worker thread: the handler on every payload at once, then each request's reply frame on its own."""
        started = time.perf_counter()
        results = run_batch(self.handler, [p.msg.payload for p in batch])
        out: list[bytes | BaseException] = []
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                out.append(result)
                continue
            scores, timings = result
            extra = {"batch_wait_ms": (item.flushed - item.received) * 1000.0,
                     "batch_size": int(timings.get("batch_size", item.inputs)) if isinstance(timings, dict) else 0}
            try:
                out.append(self.reply(item.msg, item.received, started, (scores, timings), extra))
            except Exception as exc:  # noqa: BLE001 - a reply too large (or unencodable) fails alone
                out.append(exc)
        return out
