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
import socket
import ssl as ssl_module
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from planner import config
from planner.errors import CodecError, CompressError, PlannerError
from planner.runtime import protocol as P
from planner.runtime.batching import Batcher, BatchSettings
from planner.runtime.options import ServerOptions

log = logging.getLogger("planner.runtime.server")

_READ_CHUNK = 1 << 20
DEFAULT_MAX_BATCH = config.DEFAULT_MAX_BATCH
DEFAULT_MAX_REPLY = config.DEFAULT_MAX_REPLY
MIN_BODY_RATE = 128 * 1024  # bytes/s a client must at least sustain inside a frame (on top of read_timeout)


class Handler(Protocol):
    """What the server runs; it may also offer `batch_of(payload) -> int` (the batch a payload's header
    declares) so that `max_batch` is enforced before any decoding."""

    model: str

    def infer(self, payload: bytes) -> tuple[np.ndarray, dict[str, float]]: ...


class ReplyTooLarge(PlannerError):
    """The handler's answer is beyond the server's reply limit."""


class _Reject(Exception):
    """Answer this connection with an ERROR frame, then close it."""

    def __init__(self, code: P.ErrorCode, message: str, request_id: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


def _error_code(exc: PlannerError) -> P.ErrorCode:
    if isinstance(exc, ReplyTooLarge):
        return P.ErrorCode.TOO_LARGE
    if isinstance(exc, CodecError):
        return P.ErrorCode.BAD_PAYLOAD
    if isinstance(exc, CompressError):
        return P.ErrorCode.UNSUPPORTED
    return P.ErrorCode.REJECTED


@dataclass(eq=False)
class _Conn:
    """One open connection: authenticated yet, and since when it waits for its next frame (None: busy)."""

    writer: asyncio.StreamWriter
    opened: float
    authenticated: bool = False
    idle_since: float | None = None
    evicted: bool = False


class CloudServer:
    """Serve `handler` on host:port (port 0: an ephemeral one, see `.port` after start).

    Every request's work is bounded: `max_batch` (checked on the payload's header before any decoding, when
    the handler can tell the batch: `handler.batch_of(payload)`), `max_reply` bytes of reply and
    `compute_timeout` seconds from the request's arrival to its reply. Before authentication a connection may
    send one HELLO of at most `protocol.MAX_HELLO_BYTES` within `read_timeout`, and at most
    `max_unauthenticated` connections wait for theirs (the oldest is dropped for a newcomer); when all
    `max_connections` are taken, the connection idle the longest is closed for a new client (BUSY when every
    one is busy). `ssl` (an `ssl.SSLContext`, see `tls.server_context`) serves TLS.
    """

    def __init__(self, handler: Handler, host: str | None = None, port: int | None = None,
                 max_frame: int | None = None, workers: int | None = None, token: str | None = None,
                 read_timeout: float | None = None, *, options: ServerOptions | None = None,
                 ssl: ssl_module.SSLContext | None = None, batching: BatchSettings | None = None,
                 **overrides) -> None:
        given = dict(host=host, port=port, max_frame=max_frame, workers=workers, token=token,
                     read_timeout=read_timeout)
        o = self.options = (options or ServerOptions()).updated(
            **{k: v for k, v in given.items() if v is not None}, **overrides)
        if not isinstance(getattr(handler, "model", None), str) or not callable(getattr(handler, "infer", None)):
            raise PlannerError("a cloud handler needs a `model` name and an `infer(payload)` method")
        self.handler = handler
        self.host, self.port = o.host, o.port
        self.max_frame = o.max_frame
        self.workers = int(o.workers or os.cpu_count() or 1)
        self.token = o.token or ""
        self.read_timeout, self.idle_timeout = float(o.read_timeout), float(o.idle_timeout)
        self.max_connections = o.max_connections
        self.max_unauthenticated = min(o.max_unauthenticated, self.max_connections)
        self.max_batch, self.max_reply = o.max_batch, o.max_reply
        self.compute_timeout, self.grace_s = float(o.compute_timeout), float(o.grace_s)
        self.ssl = ssl
        self.batching = batching or BatchSettings.off()
        self._batcher: Batcher | None = None
        self.stats = {"requests": 0, "errors": 0, "connections": 0, "evicted": 0}
        self._server: asyncio.base_events.Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._conns: dict[asyncio.Task, _Conn] = {}  # one per open connection
        self._closing = False
        self._started = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        """Bind and start accepting; returns the bound port."""
        self._loop = asyncio.get_running_loop()
        try:
            # TLS is started per connection in _on_connect, so a handshake in progress holds an unauthenticated slot
            self._server = await asyncio.start_server(self._on_connect, self.host, self.port, limit=_READ_CHUNK)
        except OSError as exc:
            raise PlannerError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="planner-tail")
        self._batcher = (Batcher(self.handler, self.batching, self._pool, self._reply, self.workers)
                         if self.batching.enabled else None)
        self.port = self._server.sockets[0].getsockname()[1]
        self._started = time.monotonic()
        self._closing = False
        log.info("serving %s on %s:%d (%d workers%s%s)", self.handler.model, self.host, self.port, self.workers,
                 ", TLS" if self.ssl else "", f", batching {self.batching.delay_ms:g} ms / {self.batching.max_inputs}"
                 if self._batcher else "")
        return self.port

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to grace_s), then close every connection."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        for conn in [c for c in self._conns.values() if c.idle_since is not None]:  # waiting: tell them, hang up
            conn.writer.write(P.encode(P.Error(P.ErrorCode.SHUTTING_DOWN, "server is shutting down")))
            conn.writer.close()
        if self._conns:
            tasks = dict(self._conns)
            _, pending = await asyncio.wait(set(tasks), timeout=self.grace_s)
            for task in pending:  # still computing after the grace period
                tasks[task].writer.transport.abort()
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
            except BaseException as exc:  # noqa: BLE001 - bind error: report to the caller
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
            if isinstance(failure[0], PlannerError):
                raise failure[0]
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
        """WELCOME's info: the model, frame limit and the handler's identity (`identity()`: weights digest,
        autoencoder and raw-quantizer ids, None for none), which the edge checks against its own."""
        info = {"model": self.handler.model, "max_frame": self.max_frame, "server": "planner",
                "features": P.FEATURE_BATCH_TIMINGS}
        identity = getattr(self.handler, "identity", None)
        if callable(identity):
            info.update({k: v for k, v in identity().items() if k in P.IDENTITY_KEYS})
        return info

    def health(self) -> dict[str, Any]:
        return {"status": "stopping" if self._closing else "ok", "model": self.handler.model,
                "uptime_s": round(time.monotonic() - self._started, 3), "requests": self.stats["requests"],
                "errors": self.stats["errors"], "connections": len(self._conns), "workers": self.workers,
                "max_frame": self.max_frame, "batches": self._batcher.batches if self._batcher else 0}


    # ------------------------------------------------------------ connections

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        conn = _Conn(writer, time.monotonic())
        peer = writer.get_extra_info("peername")
        self.stats["connections"] += 1
        try:
            if not self._make_room():
                raise _Reject(P.ErrorCode.BUSY, f"too many connections (limit {self.max_connections}), all busy")
            self._conns[task] = conn
            if self.ssl is not None:  # no await before this one: nothing is read in plain text first
                await writer.start_tls(self.ssl, ssl_handshake_timeout=self.read_timeout)
                if writer.transport is None:
                    return  # the peer hung up as the handshake ended
            await self._converse(reader, writer, conn)
        except _Reject as exc:
            if conn.evicted:
                return
            self.stats["errors"] += 1
            log.info("closing %s: %s %s", peer, exc.code.name, exc)
            with contextlib.suppress(Exception):
                await self._write(writer, P.Error(exc.code, str(exc), exc.request_id))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl_module.SSLError):
            pass  # the peer went away (or was evicted, or spoke no TLS to a TLS server); nothing to answer
        except asyncio.CancelledError:
            pass  # stop() gave up on this connection; it is closed below
        except Exception:
            self.stats["errors"] += 1
            log.exception("connection from %s failed", peer)
        finally:
            self._conns.pop(task, None)
            with contextlib.suppress(Exception):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)

    def _make_room(self) -> bool:
        """Admit one more connection: drop the oldest unauthenticated one when those are at their cap, and the
        one idle the longest when every slot is taken; False when all slots are busy computing."""
        pending = [c for c in self._conns.values() if not c.authenticated]
        if len(pending) >= self.max_unauthenticated:
            self._evict(min(pending, key=lambda c: c.opened), "too many connections without HELLO")
        if len(self._conns) < self.max_connections:
            return True
        idle = [c for c in self._conns.values() if c.idle_since is not None]
        if not idle:
            return False
        self._evict(min(idle, key=lambda c: c.idle_since), "closed for a new client (idle the longest)")
        return True

    def _evict(self, conn: _Conn, why: str) -> None:
        """Close `conn` now (BUSY), freeing its slot at once; its task ends on the closed stream."""
        for task, c in list(self._conns.items()):
            if c is conn:
                del self._conns[task]
        conn.evicted = True
        self.stats["evicted"] += 1
        with contextlib.suppress(Exception):
            conn.writer.write(P.encode(P.Error(P.ErrorCode.BUSY, f"server full: {why}")))
        conn.writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn) -> None:
        hello = await self._read_message(reader, conn, self.read_timeout, hello=True)
        if not hmac.compare_digest(hello.token.encode(), self.token.encode()):
            raise _Reject(P.ErrorCode.AUTH, "wrong or missing token")
        conn.authenticated = True
        await self._write(writer, P.Welcome(self.welcome()))
        while not self._closing:
            msg = await self._read_message(reader, conn, self.idle_timeout, eof_ok=True)
            if msg is None:
                return
            if isinstance(msg, P.Health):
                await self._write(writer, P.HealthOk(self.health()))
            elif isinstance(msg, P.Infer):
                await self._write(writer, await self._infer(msg))
            else:
                raise _Reject(P.ErrorCode.UNKNOWN_TYPE, f"a client may not send {msg.TYPE.name} here")
        raise _Reject(P.ErrorCode.SHUTTING_DOWN, "server is shutting down")

    async def _read_message(self, reader: asyncio.StreamReader, conn: _Conn, wait_s: float, *,
                            eof_ok: bool = False, hello: bool = False):
        """One frame: the header within `wait_s`, then the whole body by one deadline (never per chunk).

        The first frame must be a HELLO of at most MAX_HELLO_BYTES, checked on its header before any body byte
        is read, and header and body share the one deadline `wait_s`. Other bodies get `read_timeout` plus
        the time to cross at MIN_BODY_RATE bytes/s."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        conn.idle_since = time.monotonic()  # until a header arrives, stop() or a newcomer may hang up at once
        try:
            head = await asyncio.wait_for(reader.readexactly(P.HEADER_SIZE), wait_s)
        except TimeoutError as exc:
            raise _Reject(P.ErrorCode.TIMEOUT, f"no complete frame header within {wait_s:g} s") from exc
        except asyncio.IncompleteReadError as exc:
            if eof_ok and not exc.partial:
                return None
            raise _Reject(P.ErrorCode.BAD_FRAME, f"truncated frame header ({len(exc.partial)} bytes)") from exc
        finally:
            conn.idle_since = None
        header = self._header(head, hello)
        budget = wait_s - (loop.time() - start) if hello else self.read_timeout + header.length / MIN_BODY_RATE
        try:
            body = await asyncio.wait_for(reader.readexactly(header.length), max(budget, 1e-3))
        except TimeoutError as exc:
            what = "HELLO" if hello else "frame body"
            raise _Reject(P.ErrorCode.TIMEOUT, f"{what} of {header.length} bytes not complete within "
                                               f"{wait_s if hello else budget:.3g} s") from exc
        except asyncio.IncompleteReadError as exc:
            raise _Reject(P.ErrorCode.BAD_FRAME, f"truncated frame: {len(exc.partial)} of {header.length} "
                                                 "body bytes") from exc
        try:
            return P.decode_body(header, body)
        except P.ProtocolError as exc:
            raise _Reject(exc.code, str(exc)) from exc

    def _header(self, head: bytes, hello: bool) -> P.Header:
        try:
            header = P.parse_header(head, self.max_frame)
        except P.ProtocolError as exc:
            raise _Reject(exc.code, str(exc)) from exc
        if hello and header.type != P.MsgType.HELLO:
            raise _Reject(P.ErrorCode.AUTH, f"expected HELLO first, got {header.type.name}")
        if hello and header.length > P.MAX_HELLO_BYTES:
            raise _Reject(P.ErrorCode.TOO_LARGE, f"HELLO body of {header.length} bytes exceeds the limit of "
                                                 f"{P.MAX_HELLO_BYTES} bytes before authentication")
        return header

    async def _write(self, writer: asyncio.StreamWriter, msg) -> None:
        writer.write(msg if isinstance(msg, bytes) else P.encode(msg))
        await asyncio.wait_for(writer.drain(), self.read_timeout)

    async def _infer(self, msg: P.Infer) -> bytes:
        received = time.perf_counter()
        if msg.model != self.handler.model:
            raise _Reject(P.ErrorCode.WRONG_MODEL,
                          f"this server holds model {self.handler.model!r}, not {msg.model!r}", msg.request_id)
        inputs = self._check_batch(msg)
        future = (self._batcher.submit(msg, inputs, received) if self._batcher else
                  asyncio.get_running_loop().run_in_executor(self._pool, self._compute, msg, received))
        done, _ = await asyncio.wait({future}, timeout=self.compute_timeout)
        if not done:  # a queued request is dropped; one already running finishes in its thread, unanswered
            future.cancel()
            raise _Reject(P.ErrorCode.TIMEOUT, f"request {msg.request_id} not answered within the compute "
                                               f"deadline of {self.compute_timeout:g} s", msg.request_id)
        try:
            result = future.result()
        except PlannerError as exc:
            raise _Reject(_error_code(exc), str(exc), msg.request_id) from exc
        except Exception as exc:
            log.exception("handler failed on request %d", msg.request_id)
            raise _Reject(P.ErrorCode.INTERNAL, f"internal error in the handler ({type(exc).__name__}); "
                                                "see the server log", msg.request_id) from exc
        self.stats["requests"] += 1
        return result

    def _check_batch(self, msg: P.Infer) -> int:
        """Refuse a payload declaring more than `max_batch` inputs, from its header alone (nothing decoded); the
        inputs it declares (1 when the handler cannot tell)."""
        batch_of = getattr(self.handler, "batch_of", None)
        if batch_of is None:
            return 1
        try:
            batch = int(batch_of(msg.payload))
        except PlannerError as exc:
            raise _Reject(_error_code(exc), str(exc), msg.request_id) from exc
        if batch > self.max_batch:
            raise _Reject(P.ErrorCode.TOO_LARGE, f"request {msg.request_id} declares a batch of {batch}; this "
                                                 f"server takes at most {self.max_batch} per INFER (--max-batch)",
                          msg.request_id)
        return batch

    def _compute(self, msg: P.Infer, received: float) -> bytes:
        """Worker thread: run the handler and encode the RESULT frame (a handler bug becomes INTERNAL)."""
        started = time.perf_counter()
        return self._reply(msg, received, started, self.handler.infer(msg.payload))

    def _reply(self, msg: P.Infer, received: float, started: float, result, batch: dict | None = None) -> bytes:
        """The RESULT frame of a handler's (scores, timings) (reply limit checked); `batch`: the dynamic batch's
        wait and size, sent to clients that asked for them (older clients get the four timings they know)."""
        scores, timings = result
        if not isinstance(timings, dict):
            raise TypeError(f"handler returned timings of type {type(timings).__name__}, expected a dict")
        scores = np.asarray(scores, dtype=np.float32)
        if scores.nbytes > self.max_reply:
            raise ReplyTooLarge(f"the reply to request {msg.request_id} would carry {scores.nbytes} bytes of "
                                f"scores, above the limit of {self.max_reply} bytes")
        done = time.perf_counter()
        result = P.Scores(msg.request_id, scores,
                          queue_wait_ms=(started - received) * 1000.0 + float(timings.get("queue_ms", 0.0)),
                          decode_ms=float(timings.get("decode_ms", 0.0)),
                          tail_ms=float(timings.get("tail_ms", (done - started) * 1000.0)),
                          server_ms=(time.perf_counter() - received) * 1000.0,
                          **((batch or {"batch_wait_ms": 0.0, "batch_size": int(timings.get("batch_size", 0))})
                             if msg.batch_timings else {}))
        try:
            return P.encode(result)
        except P.ProtocolError as exc:
            raise ValueError(f"handler output cannot be sent: {exc}") from exc


def check_bindable(host: str, port: int) -> None:
    """Raise PlannerError now when host:port cannot be listened on (in use, not an address of this machine),
    so that `planner serve` says so before it loads a model."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PlannerError(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise PlannerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
