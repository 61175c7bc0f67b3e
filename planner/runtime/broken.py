"""A deliberately broken cloud server, for robustness checks of the edge (tests, benchmarks/hostile.py).

`BrokenServer(kind)` listens on an ephemeral loopback port and answers every connection in one of the
`KINDS` of wrong ways (bad scores, wrong request id, an absurd frame header, silence, ...). Each connection is
served by its own daemon thread with a socket timeout, so nothing it does outlives `close()` by more than that.
"""

from __future__ import annotations

import socket
import struct
import threading

import numpy as np

from planner.errors import PlannerError
from planner.runtime import protocol as P

_GOOD_WELCOME = {"model": "", "max_frame": P.DEFAULT_MAX_FRAME, "server": "broken"}


def _result(rid: int, scores) -> bytes:
    return P.encode(P.Scores(rid, np.asarray(scores, dtype=np.float32)))


def _welcome(model: str, identity: dict | None = None) -> bytes:
    return P.encode(P.Welcome({**_GOOD_WELCOME, **(identity or {}), "model": model}))


def _unknown_error(rid: int) -> bytes:
    body = struct.pack("!QHH", rid, 999, 4) + b"nope"
    return P.pack_header(P.MsgType.ERROR, len(body)) + body


# kind -> what to answer to an INFER with request id `rid` (None: say nothing), given `classes` scores per input.
_INFER_REPLIES = {
    "zero-dim": lambda rid, n: _result(rid, np.float32(1.0)),
    "empty": lambda rid, n: _result(rid, np.zeros((1, 0))),
    "nan": lambda rid, n: _result(rid, np.full((1, n), np.nan)),
    "inf": lambda rid, n: _result(rid, np.full((1, n), np.inf)),
    "wrong-shape": lambda rid, n: _result(rid, np.zeros((3, n + 1))),
    "wrong-id": lambda rid, n: _result(rid + 1, np.zeros((1, n))),
    "huge-header": lambda rid, n: P.pack_header(P.MsgType.RESULT, 2**31) + b"\0" * 64,
    "unknown-error-code": lambda rid, n: _unknown_error(rid),
    "garbage": lambda rid, n: b"HTTP/1.1 200 OK\r\n\r\n" + bytes(range(256)),
    "truncated": lambda rid, n: _result(rid, np.zeros((1, n)))[:-3],
    "silence": lambda rid, n: None,
}
# kinds that go wrong at the HELLO: answer it with this (given the model name and identity), then hang up
_HELLO_REPLIES = {
    "auth-error": lambda model, identity: P.encode(P.Error(P.ErrorCode.AUTH, "wrong or missing token")),
    "close-after-welcome": _welcome,
    "bad-welcome": lambda model, identity: P.pack_header(P.MsgType.WELCOME, 7) + b"{nope}!",
    "result-for-hello": lambda model, identity: _result(0, np.zeros((1, 10))),
}
KINDS = tuple(_INFER_REPLIES) + tuple(_HELLO_REPLIES)


class BrokenServer:
    """Serve `model` wrongly in the way `kind` names; `address` is 'host:port'. A context manager."""

    def __init__(self, kind: str, model: str, classes: int = 10, timeout_s: float = 5.0,
                 identity: dict | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown broken-server kind {kind!r}; known: {', '.join(KINDS)}")
        self.kind, self.model, self.classes, self.timeout_s = kind, model, classes, timeout_s
        self.identity = dict(identity or {})  # announced in its WELCOME (an edge refuses a server without it)
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"broken-{kind}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.timeout_s)
        with conn:
            try:
                if _read_frame(conn) is None:
                    return
                if self.kind in _HELLO_REPLIES:
                    conn.sendall(_HELLO_REPLIES[self.kind](self.model, self.identity))
                    return
                conn.sendall(_welcome(self.model, self.identity))
                while not self._stop.is_set() and (msg := _read_frame(conn)) is not None:
                    reply = _INFER_REPLIES[self.kind](getattr(msg, "request_id", 0), self.classes)
                    if reply is None:
                        self._stop.wait(self.timeout_s)
                        return
                    conn.sendall(reply)
            except (OSError, PlannerError):
                return

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(2.0)

    def __enter__(self) -> BrokenServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_frame(conn: socket.socket):
    """One frame from the client, or None at EOF."""
    head = _exactly(conn, P.HEADER_SIZE)
    if head is None:
        return None
    header = P.parse_header(head, P.DEFAULT_MAX_FRAME)
    body = _exactly(conn, header.length)
    return None if body is None else P.decode_body(header, body)


def _exactly(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
