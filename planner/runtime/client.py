"""Edge-side client of the cloud server: one persistent connection, timed requests, backoff state.

`CloudClient.infer` raises `CloudUnavailable` when the cloud cannot answer now (refused, reset,
timed out, busy, shutting down, or speaking garbage); the caller then computes on the edge and
consults `available()` before trying the cloud again (exponential backoff). A request the server
rejects (bad payload, wrong model, wrong token) raises `ServerError` instead: the cloud is up but
said no. Every RESULT is checked before it is returned (request id, scores of shape (batch, classes), all
finite): a broken or hostile server raises `BadReply` (a CloudUnavailable), never a wrong answer. A wrong
token backs off like an outage, so a misconfigured edge does not reconnect on every request.
"""

from __future__ import annotations

import itertools
import math
import select
import socket
import ssl
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from planner import config
from planner.config import DEFAULT_BACKOFF_MAX_S, DEFAULT_BACKOFF_S
from planner.errors import PlannerError, RuntimeErrorReply
from planner.runtime import protocol as P
from planner.runtime.options import EdgeOptions
from planner.runtime.shaper import ShapedSocket, Shaper
from planner.runtime.tls import PLAIN_TCP_REASONS, client_context, is_loopback, speaks_tls

DEFAULT_MAX_REPLY = config.DEFAULT_MAX_REPLY
_UNAVAILABLE_CODES = {P.ErrorCode.BUSY, P.ErrorCode.SHUTTING_DOWN, P.ErrorCode.TIMEOUT}


class CloudUnavailable(PlannerError):
    """The cloud cannot answer now (refused, reset, timed out, busy): compute on the edge and retry later."""


class TLSMismatch(CloudUnavailable):
    """One side speaks TLS and the other plain TCP: a configuration error, not an outage (the message names the
    flag to add or drop)."""


class BadReply(CloudUnavailable):
    """The server answered with something that is not a valid answer to the request (wrong id, shape, NaN)."""


class ServerError(RuntimeErrorReply):
    """The server answered with an ERROR frame; `code` is a `protocol.ErrorCode`."""

    def __init__(self, code: P.ErrorCode, message: str, request_id: int = 0) -> None:
        super().__init__(f"cloud server error {code.name}: {message}")
        self.code = code
        self.server_message = message
        self.request_id = request_id


@dataclass
class Reply:
    """The one record of an answered INFER: scores, server timings and what the edge measured (all times in ms).

    `wall_ms` runs from the first request byte handed to the link to the last reply byte received
    (connection set-up excluded, it is `connect_ms`); `network_ms = wall_ms - server_ms` is the wire time, the
    part a link model predicts (request transfer + reply transfer + round trip): its one definition, which the
    bandwidth estimate, the calibration and `Result.transfer_ms` all read. Made by `Reply.of`, which bounds the
    server's figures by what the edge waited.
    """

    request_id: int
    scores: np.ndarray
    wall_ms: float
    connect_ms: float
    queue_wait_ms: float
    decode_ms: float
    tail_ms: float
    server_ms: float
    request_bytes: int
    reply_bytes: int
    batch_wait_ms: float | None = None  # the part of queue_wait_ms spent waiting for a dynamic batch (None: not told)
    batch_size: int = 0  # inputs the server computed together with this request's (0: not batched or not told)
    bounded: bool = False  # the server reported a time outside [0, wall_ms] (clamped: broken or hostile)

    @classmethod
    def of(cls, result: P.Scores, wall_ms: float, connect_ms: float, request_bytes: int, reply_bytes: int) -> Reply:
        """The record of one exchange. A server cannot have spent longer than the edge waited for it: each of its
        timings is clamped into [0, wall_ms] (a reply saying its queue wait was 1e300 s enters no estimate as
        such), and `server_ms` is at least its parts."""
        raw = {k: float(getattr(result, k)) for k in P.TIMING_FIELDS}
        times = {k: min(max(v, 0.0), wall_ms) for k, v in raw.items()}
        parts = times["queue_wait_ms"] + times["decode_ms"] + times["tail_ms"]
        times["server_ms"] = min(max(times["server_ms"], parts), wall_ms)
        batch_wait = result.batch_wait_ms
        if batch_wait is not None:
            batch_wait = min(max(float(batch_wait), 0.0), times["queue_wait_ms"])
        return cls(result.request_id, result.scores, wall_ms, connect_ms, **times, request_bytes=request_bytes,
                   reply_bytes=reply_bytes, batch_wait_ms=batch_wait, batch_size=max(0, int(result.batch_size)),
                   bounded=times != raw or batch_wait != result.batch_wait_ms)

    @property
    def network_ms(self) -> float:
        """The wire time: the exchange's wall time less the server's."""
        return max(0.0, self.wall_ms - self.server_ms)

    @property
    def compute_ms(self) -> float:
        """The server's compute: decode + tail."""
        return self.decode_ms + self.tail_ms

    @property
    def held_ms(self) -> float:
        """The server's time beyond its compute: the queue wait and its own handling."""
        return max(0.0, self.server_ms - self.compute_ms)

    def timings(self) -> dict[str, float | int]:
        """Everything but the scores, JSON-ready."""
        return {"wall_ms": self.wall_ms, "connect_ms": self.connect_ms, "network_ms": self.network_ms,
                "queue_wait_ms": self.queue_wait_ms, "decode_ms": self.decode_ms, "tail_ms": self.tail_ms,
                "server_ms": self.server_ms, "request_bytes": self.request_bytes, "reply_bytes": self.reply_bytes,
                **({"batch_wait_ms": self.batch_wait_ms, "batch_size": self.batch_size}
                   if self.batch_wait_ms is not None else {})}


def reply_problem(reply, request_id: int, batch: int | None, classes: tuple[int, ...] | None) -> str | None:
    """What is wrong with `reply` as the answer to `request_id` (None: nothing)."""
    if not isinstance(reply, P.Scores):
        return f"a {type(reply).__name__} message instead of a RESULT"
    if reply.request_id != request_id:
        return f"it answers request {reply.request_id}"
    scores = reply.scores
    expected = None if batch is None or classes is None else (batch, *classes)
    if expected is not None and tuple(scores.shape) != expected:
        return f"scores of shape {tuple(scores.shape)}, expected {expected}"
    if scores.ndim == 0 or scores.size == 0 or (batch is not None and scores.shape[0] != batch):
        return f"scores of shape {tuple(scores.shape)}, expected ({batch or 'batch'}, classes)"
    if not np.isfinite(scores).all():
        return "scores that are not all finite (NaN or inf)"
    return None


def parse_address(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PlannerError(f"bad cloud address {address!r}: expected 'host:port'")
    return host, int(port)


class _PlainSocket:
    """The ShapedSocket interface on an unshaped socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def sendall(self, data: bytes, deadline: float | None = None) -> None:
        self.sock.sendall(data)

    def recv(self, n: int, deadline: float | None = None) -> bytes:
        return self.sock.recv(n)

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def close(self) -> None:
        self.sock.close()


class _Closed(ConnectionError):
    """The server closed the connection."""


class _Invalid(Exception):
    """A well-formed reply that does not answer the request (see `reply_problem`)."""


class CloudClient:
    """Talks to one `planner serve` over TCP; thread-safe (one request at a time per client)."""

    def __init__(self, address: str, token: str | None = None, timeout: float = 5.0, shaper: Shaper | None = None,
                 *, connect_timeout: float | None = None, backoff_s: float = DEFAULT_BACKOFF_S, backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
                 max_reply: int = DEFAULT_MAX_REPLY, tls: bool | str | Path | ssl.SSLContext | None = None) -> None:
        EdgeOptions(timeout=timeout, backoff_s=backoff_s, backoff_max_s=backoff_max_s)  # the edge's own rules
        self.address = address
        self.host, self.port = parse_address(address)
        self.token = token or ""
        self.tls = client_context(tls)
        if self.token and self.tls is None and not is_loopback(self.host):
            warnings.warn(f"the token for {address} travels in cleartext: pass tls= (planner run --tls-ca FILE)",
                          stacklevel=2)
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout or timeout)
        self.shaper = shaper
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_reply = int(max_reply)
        self.server_info: dict = {}
        self.failures = 0
        self.answers = 0  # valid RESULTs received
        self.auth_failures = 0  # AUTH errors (wrong or missing token)
        self.last_failure: str | None = None  # why the cloud was last given up on (the backoff's reason)
        self._next_try = -math.inf
        self._conn: ShapedSocket | _PlainSocket | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ public

    @property
    def model(self) -> str | None:
        """The model the server said it serves (after the first connection)."""
        return self.server_info.get("model")

    def available(self) -> bool:
        """Whether to try the cloud now (False while backing off after a failure)."""
        return time.monotonic() >= self._next_try

    def backoff_remaining_s(self) -> float:
        return max(0.0, self._next_try - time.monotonic())

    def connect(self) -> dict:
        """Open the connection (HELLO/WELCOME) if not open; return the server's WELCOME info."""
        with self._lock:
            self._call(lambda deadline: self._ensure_connected(deadline))
            return dict(self.server_info)

    def health(self) -> dict:
        """The server's HEALTH_OK counters."""
        with self._lock:
            reply = self._call(lambda deadline: self._exchange(P.Health(), deadline)[0])
        if not isinstance(reply, P.HealthOk):
            raise CloudUnavailable(f"cloud at {self.address} answered HEALTH with {type(reply).__name__}")
        return reply.info

    def infer(self, model: str, payload: bytes, *, request_id: int | None = None, batch: int | None = None,
              classes: tuple[int, ...] | None = None) -> Reply:
        """Send one codec payload to the tail of `model`; the scores and timings, or CloudUnavailable/ServerError.

        The reply must carry finite scores of shape (batch, *classes) (each when given; else non-empty); anything
        else raises BadReply and backs off as an outage would."""
        rid = next(self._ids) if request_id is None else int(request_id)
        msg = P.Infer(rid, model, bytes(payload))
        frame_len = msg.frame_size

        def exchange(deadline: float):
            out = self._exchange(msg, deadline)
            problem = reply_problem(out[0], rid, batch, classes)
            if problem:
                raise _Invalid(f"cloud at {self.address} sent a bad reply to request {rid}: {problem}")
            return out

        with self._lock:
            result, wall_ms, connect_ms, reply_len = self._call(exchange)
            self.answers += 1
        return Reply.of(result, wall_ms, connect_ms, frame_len, reply_len)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ internals

    def _call(self, fn):
        """Run fn(deadline), mapping network failures to CloudUnavailable and keeping the backoff state."""
        deadline = time.monotonic() + self.timeout
        fresh = self._conn is None
        for attempt in range(2):
            try:
                out = fn(deadline)
            except TLSMismatch as exc:
                self._drop()
                self._back_off(str(exc))
                raise
            except ServerError as exc:
                self._drop()
                if exc.code in _UNAVAILABLE_CODES:
                    raise self._fail(f"cloud at {self.address} is unavailable: {exc.server_message}") from exc
                if exc.code == P.ErrorCode.AUTH:  # retrying at once cannot help: back off as from an outage
                    self.auth_failures += 1
                    exc.args = (f"{exc.args[0]} (retry in {self._back_off(str(exc)):.2g} s)",)
                raise
            except (_Closed, ConnectionResetError, BrokenPipeError) as exc:
                self._drop()
                # A kept-alive connection the server closed meanwhile: reconnect once.
                if attempt == 0 and not fresh and time.monotonic() < deadline:
                    continue
                raise self._fail(f"cloud at {self.address} closed the connection: {exc}") from exc
            except TimeoutError as exc:
                self._drop()
                raise self._fail(f"cloud at {self.address} timed out after {self.timeout:g} s") from exc
            except OSError as exc:
                self._drop()
                raise self._fail(f"cloud at {self.address} unreachable: {exc}") from exc
            except P.ProtocolError as exc:
                self._drop()
                raise self._fail(f"cloud at {self.address} sent a bad frame: {exc}") from exc
            except _Invalid as exc:
                self._drop()
                raise self._fail(str(exc), BadReply) from None
            self.failures = 0
            self._next_try = -math.inf
            self.last_failure = None
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    def _fail(self, message: str, kind: type[CloudUnavailable] = CloudUnavailable) -> CloudUnavailable:
        return kind(f"{message} (retry in {self._back_off(message):.2g} s)")

    def _back_off(self, reason: str) -> float:
        """Count a failure and wait exponentially longer before the next try; the wait in seconds."""
        self.failures += 1
        wait = min(self.backoff_max_s, self.backoff_s * 2 ** (self.failures - 1))
        self._next_try = time.monotonic() + wait
        self.last_failure = reason
        return wait

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _stale(self) -> bool:
        """A kept-alive connection with something to read before we asked: closed or errored by the server."""
        sock = self._conn.sock
        try:
            if not select.select([sock], [], [], 0)[0]:
                return False
        except (OSError, ValueError):
            return True
        if not isinstance(sock, ssl.SSLSocket):
            return True
        sock.setblocking(False)  # readable TLS may be only a record without data (a session ticket)
        try:
            sock.recv(1)
            return True  # data or EOF: an ERROR frame or a close
        except ssl.SSLWantReadError:
            return False
        except OSError:
            return True

    def _ensure_connected(self, deadline: float) -> float:
        """Connect and authenticate unless a live connection exists; the milliseconds it took."""
        if self._conn is not None and not self._stale():
            return 0.0
        self._drop()
        t0 = time.monotonic()
        limit = min(self.connect_timeout, max(1e-3, deadline - t0))
        sock = socket.create_connection((self.host, self.port), timeout=limit)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException as exc:
                sock.close()
                if isinstance(exc, ssl.SSLError) and exc.reason in PLAIN_TCP_REASONS:
                    raise TLSMismatch(f"the cloud at {self.address} speaks plain TCP, not TLS: drop --tls/--tls-ca "
                                      "(tls= in Python), or start the server with --tls-cert/--tls-key") from None
                raise
        self._conn = self.shaper.wrap(sock) if self.shaper else _PlainSocket(sock)
        if self.shaper:
            time.sleep(min(self.shaper.connect_delay_s(), max(0.0, deadline - time.monotonic())))
        self._send(P.Hello(self.token), deadline)
        try:
            reply, _ = self._read(deadline)
        except (_Closed, ConnectionResetError):
            if self.tls is None and speaks_tls(self.host, self.port, max(0.5, deadline - time.monotonic())):
                raise TLSMismatch(f"the cloud at {self.address} serves TLS but this client speaks plain TCP: add "
                                  "--tls-ca FILE (its certificate or CA) or --tls (the system CA store); tls= in "
                                  "Python") from None
            raise
        if not isinstance(reply, P.Welcome):
            raise P.ProtocolError(f"expected WELCOME, got {type(reply).__name__}")
        self.server_info = reply.info
        return (time.monotonic() - t0) * 1000.0

    def _exchange(self, msg, deadline: float):
        """Send one request on a live connection and read its reply: (reply, wall_ms, connect_ms, reply_bytes)."""
        connect_ms = self._ensure_connected(deadline)
        if isinstance(msg, P.Infer) and P.FEATURE_BATCH_TIMINGS in str(self.server_info.get("features", "")).split(","):
            msg = replace(msg, batch_timings=True)  # a server that sends them only when asked
        frame = P.encode(msg)
        limit = self.server_info.get("max_frame", P.DEFAULT_MAX_FRAME)
        if len(frame) - P.HEADER_SIZE > limit:  # the server would refuse it after we paid for the upload
            raise ServerError(P.ErrorCode.TOO_LARGE, f"request body of {len(frame) - P.HEADER_SIZE} bytes "
                                                     f"exceeds the server's limit of {limit} bytes")
        t0 = time.monotonic()
        self._send(frame, deadline)
        reply, nbytes = self._read(deadline)
        return reply, (time.monotonic() - t0) * 1000.0, connect_ms, nbytes

    def _send(self, msg, deadline: float) -> None:
        self._conn.settimeout(self._remaining(deadline))
        self._conn.sendall(msg if isinstance(msg, bytes) else P.encode(msg), deadline)

    def _read(self, deadline: float):
        header = P.parse_header(self._recv_exact(P.HEADER_SIZE, deadline), self.max_reply)
        body = self._recv_exact(header.length, deadline)
        reply = P.decode_body(header, body)
        if isinstance(reply, P.Error):
            raise ServerError(reply.code, reply.message, reply.request_id)
        return reply, P.HEADER_SIZE + header.length

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            self._conn.settimeout(self._remaining(deadline))
            chunk = self._conn.recv(min(n - len(buf), 1 << 20), deadline)
            if not chunk:
                raise _Closed(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    @staticmethod
    def _remaining(deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left
