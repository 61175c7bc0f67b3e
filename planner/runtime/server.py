"""The cloud server: an asyncio TCP server that answers INFER frames with a pluggable compute handler.

The handler is any object with `model: str` and `infer(payload: bytes) -> (scores, timings)`
(timings: a dict with `decode_ms` and `tail_ms`, plus `queue_ms` when the handler waits in a queue of
its own, as a Ray Serve deployment does; it is added to the reply's queue wait). It runs in a thread
pool, so one slow request never stalls the event loop or the other connections. Each connection
starts with HELLO (token checked), then carries one request at a time; any bad input gets an ERROR
frame (when the connection still allows) and that connection is closed, while the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from planner.errors import CodecError, CompressError, PlannerError
from planner.runtime import protocol as P

log = logging.getLogger("planner.runtime.server")

_READ_CHUNK = 1 << 20


class Handler(Protocol):
    model: str

    def infer(self, payload: bytes) -> tuple[np.ndarray, dict[str, float]]: ...


class _Reject(Exception):
    """Answer this connection with an ERROR frame, then close it."""

    def __init__(self, code: P.ErrorCode, message: str, request_id: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


def _error_code(exc: PlannerError) -> P.ErrorCode:
    if isinstance(exc, CodecError):
        return P.ErrorCode.BAD_PAYLOAD
    if isinstance(exc, CompressError):
        return P.ErrorCode.UNSUPPORTED
    return P.ErrorCode.REJECTED


class CloudServer:
    """Serve `handler` on host:port (port 0: an ephemeral one, see `.port` after start)."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 7000,
                 max_frame: int = P.DEFAULT_MAX_FRAME, workers: int | None = None, token: str | None = None,
                 read_timeout: float = 10.0, *, idle_timeout: float = 300.0, max_connections: int = 256,
                 grace_s: float = 5.0) -> None:
        if not isinstance(getattr(handler, "model", None), str) or not callable(getattr(handler, "infer", None)):
            raise PlannerError("a cloud handler needs a `model` name and an `infer(payload)` method")
        if max_frame < 1 or read_timeout <= 0 or idle_timeout <= 0 or max_connections < 1:
            raise PlannerError("max_frame, timeouts and max_connections must be positive")
        self.handler = handler
        self.host = host
        self.port = port
        self.max_frame = int(max_frame)
        self.workers = int(workers or os.cpu_count() or 1)
        self.token = token or ""
        self.read_timeout = float(read_timeout)
        self.idle_timeout = float(idle_timeout)
        self.max_connections = int(max_connections)
        self.grace_s = float(grace_s)
        self.stats = {"requests": 0, "errors": 0, "connections": 0}
        self._server: asyncio.base_events.Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._tasks: dict[asyncio.Task, asyncio.StreamWriter] = {}  # one per open connection
        self._idle: set[asyncio.Task] = set()  # those waiting for their next request
        self._closing = False
        self._started = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        """Bind and start accepting; returns the bound port."""
        self._loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="planner-tail")
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port, limit=_READ_CHUNK)
        self.port = self._server.sockets[0].getsockname()[1]
        self._started = time.monotonic()
        self._closing = False
        log.info("serving %s on %s:%d (%d workers)", self.handler.model, self.host, self.port, self.workers)
        return self.port

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to grace_s), then close every connection."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        for task in list(self._idle):  # waiting for a request: tell them and hang up
            writer = self._tasks[task]
            writer.write(P.encode(P.Error(P.ErrorCode.SHUTTING_DOWN, "server is shutting down")))
            writer.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.grace_s)
            for task in pending:  # still computing after the grace period
                self._tasks[task].transport.abort()
            if pending:
                _, pending = await asyncio.wait(pending, timeout=1.0)
            for task in pending:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._server = None
        log.info("server on port %d stopped", self.port)

    def serve_forever(self, on_ready=None) -> None:
        """Run until SIGTERM/SIGINT (blocking); `on_ready(port)` is called once listening."""

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            port = await self.start()
            if on_ready is not None:
                on_ready(port)
            try:
                await stop.wait()
            finally:
                await self.stop()

        asyncio.run(main())

    def start_in_thread(self, timeout: float = 10.0) -> int:
        """Serve from a background thread (tests, notebooks); returns the bound port. Stop with `stop_thread()`."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # bind error: report to the caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"planner-serve-{self.handler.model}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise PlannerError("cloud server did not start in time")
        if failure:
            raise PlannerError(f"cloud server could not listen on {self.host}:{self.port}: {failure[0]}")
        return self.port

    def stop_thread(self, timeout: float = 10.0) -> None:
        """Stop a server started with `start_in_thread` and join its thread."""
        if self._thread is None:
            return
        loop = self._loop
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def welcome(self) -> dict[str, Any]:
        """WELCOME's info: the model, frame limit and (when the handler knows them) weights hash and autoencoder."""
        info = {"model": self.handler.model, "max_frame": self.max_frame, "server": "planner"}
        for key in P.WELCOME_OPTIONAL:
            value = getattr(self.handler, key, None)
            if isinstance(value, str):
                info[key] = value
        return info

    def health(self) -> dict[str, Any]:
        return {"status": "stopping" if self._closing else "ok", "model": self.handler.model,
                "uptime_s": round(time.monotonic() - self._started, 3), "requests": self.stats["requests"],
                "errors": self.stats["errors"], "connections": len(self._tasks), "workers": self.workers,
                "max_frame": self.max_frame}

    # ------------------------------------------------------------ connections

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks[task] = writer
        self.stats["connections"] += 1
        peer = writer.get_extra_info("peername")
        try:
            if len(self._tasks) > self.max_connections:
                raise _Reject(P.ErrorCode.BUSY, f"too many connections (limit {self.max_connections})")
            await self._converse(reader, writer)
        except _Reject as exc:
            self.stats["errors"] += 1
            log.info("closing %s: %s %s", peer, exc.code.name, exc)
            with contextlib.suppress(Exception):
                await self._write(writer, P.Error(exc.code, str(exc), exc.request_id))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the peer went away; nothing to answer
        except asyncio.CancelledError:
            pass  # stop() gave up on this connection; it is closed below
        except Exception:
            self.stats["errors"] += 1
            log.exception("connection from %s failed", peer)
        finally:
            self._tasks.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await self._read_message(reader, self.read_timeout)
        if not isinstance(hello, P.Hello):
            raise _Reject(P.ErrorCode.AUTH, f"expected HELLO first, got {hello.TYPE.name}")
        if not hmac.compare_digest(hello.token.encode(), self.token.encode()):
            raise _Reject(P.ErrorCode.AUTH, "wrong or missing token")
        await self._write(writer, P.Welcome(self.welcome()))
        while not self._closing:
            msg = await self._read_message(reader, self.idle_timeout, eof_ok=True)
            if msg is None:
                return
            if isinstance(msg, P.Health):
                await self._write(writer, P.HealthOk(self.health()))
            elif isinstance(msg, P.Infer):
                await self._write(writer, await self._infer(msg))
            else:
                raise _Reject(P.ErrorCode.UNKNOWN_TYPE, f"a client may not send {msg.TYPE.name} here")
        raise _Reject(P.ErrorCode.SHUTTING_DOWN, "server is shutting down")

    async def _read_message(self, reader: asyncio.StreamReader, first_timeout: float, eof_ok: bool = False):
        """One frame: the header within `first_timeout`, then each body chunk within the read timeout."""
        task = asyncio.current_task()
        self._idle.add(task)  # until a header arrives, stop() may hang up at once
        try:
            head = await asyncio.wait_for(reader.readexactly(P.HEADER_SIZE), first_timeout)
        except TimeoutError as exc:
            raise _Reject(P.ErrorCode.TIMEOUT, f"no complete frame header within {first_timeout:g} s") from exc
        except asyncio.IncompleteReadError as exc:
            if eof_ok and not exc.partial:
                return None
            raise _Reject(P.ErrorCode.BAD_FRAME, f"truncated frame header ({len(exc.partial)} bytes)") from exc
        finally:
            self._idle.discard(task)
        try:
            header = P.parse_header(head, self.max_frame)
        except P.ProtocolError as exc:
            raise _Reject(exc.code, str(exc)) from exc
        body = bytearray()
        while len(body) < header.length:
            try:
                chunk = await asyncio.wait_for(reader.read(min(_READ_CHUNK, header.length - len(body))),
                                               self.read_timeout)
            except TimeoutError as exc:
                raise _Reject(P.ErrorCode.TIMEOUT, f"frame body stalled at {len(body)} of {header.length} bytes "
                                                   f"for {self.read_timeout:g} s") from exc
            if not chunk:
                raise _Reject(P.ErrorCode.BAD_FRAME, f"truncated frame: {len(body)} of {header.length} body bytes")
            body += chunk
        try:
            return P.decode_body(header, bytes(body))
        except P.ProtocolError as exc:
            raise _Reject(exc.code, str(exc)) from exc

    async def _write(self, writer: asyncio.StreamWriter, msg) -> None:
        writer.write(msg if isinstance(msg, bytes) else P.encode(msg))
        await asyncio.wait_for(writer.drain(), self.read_timeout)

    async def _infer(self, msg: P.Infer) -> bytes:
        received = time.perf_counter()
        if msg.model != self.handler.model:
            raise _Reject(P.ErrorCode.WRONG_MODEL,
                          f"this server holds model {self.handler.model!r}, not {msg.model!r}", msg.request_id)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pool, self._compute, msg, received)
        except PlannerError as exc:
            raise _Reject(_error_code(exc), str(exc), msg.request_id) from exc
        except Exception as exc:
            log.exception("handler failed on request %d", msg.request_id)
            raise _Reject(P.ErrorCode.INTERNAL, f"internal error in the handler ({type(exc).__name__}); "
                                                "see the server log", msg.request_id) from exc
        self.stats["requests"] += 1
        return result

    def _compute(self, msg: P.Infer, received: float) -> bytes:
        """Worker thread: run the handler and encode the RESULT frame (a handler bug becomes INTERNAL)."""
        started = time.perf_counter()
        scores, timings = self.handler.infer(msg.payload)
        if not isinstance(timings, dict):
            raise TypeError(f"handler returned timings of type {type(timings).__name__}, expected a dict")
        done = time.perf_counter()
        result = P.Result(msg.request_id, np.asarray(scores, dtype=np.float32),
                          queue_wait_ms=(started - received) * 1000.0 + float(timings.get("queue_ms", 0.0)),
                          decode_ms=float(timings.get("decode_ms", 0.0)),
                          tail_ms=float(timings.get("tail_ms", (done - started) * 1000.0)),
                          server_ms=(time.perf_counter() - received) * 1000.0)
        try:
            return P.encode(result)
        except P.ProtocolError as exc:
            raise ValueError(f"handler output cannot be sent: {exc}") from exc
