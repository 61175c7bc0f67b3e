"""A real CloudServer on an ephemeral loopback port: answers, errors, bad frames, concurrency, fallback, shutdown."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from planner.errors import CodecError, CompressError, PlannerError, RuntimeErrorReply
from planner.runtime import protocol as P
from planner.runtime.client import CloudClient, CloudUnavailable, ServerError, parse_address
from planner.runtime.protocol import ErrorCode
from planner.runtime.server import CloudServer

TOKEN = "tok-123"
MAX_FRAME = 64 * 1024


class DummyHandler:
    """Scores derived from the payload bytes; special payloads sleep or raise."""

    model = "dummy"

    def __init__(self) -> None:
        self.slow_started = threading.Event()

    def infer(self, payload: bytes):
        if payload.startswith(b"sleep:"):
            self.slow_started.set()
            time.sleep(float(payload[6:]))
        elif payload == b"codec-error":
            raise CodecError("payload is not a feature: bad magic")
        elif payload == b"unknown-bits":
            raise CompressError("bitwidth 5 was not trained for cut 'layer2'")
        elif payload == b"bug":
            raise ZeroDivisionError("oops")
        elif payload == b"5d":
            return np.zeros((1,) * 5), {}
        time.sleep(0.004)  # longer than the stages it reports: a server's times are bounded by the exchange's
        return expected_scores(payload), {"decode_ms": 1.0, "tail_ms": 2.0}


def expected_scores(payload: bytes) -> np.ndarray:
    return np.array([len(payload), sum(payload) % 251, payload[0]], dtype=np.float32)


def start(**kw) -> tuple[CloudServer, DummyHandler, int]:
    handler = DummyHandler()
    opts = dict(port=0, token=TOKEN, max_frame=MAX_FRAME, workers=4, read_timeout=0.5, idle_timeout=5.0)
    server = CloudServer(handler, **{**opts, **kw})
    return server, handler, server.start_in_thread()


@pytest.fixture
def served():
    server, handler, port = start()
    yield server, handler, port
    server.stop_thread()


def client(port: int, **kw) -> CloudClient:
    return CloudClient(f"127.0.0.1:{port}", **{"token": TOKEN, "timeout": 3.0, **kw})


def raw_exchange(port: int, data: bytes, half_close: bool = False) -> tuple[list, bool]:
    """Send raw bytes, read until the server closes; (messages received, closed by server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3.0) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        buf = bytearray()
        try:
            while chunk := sock.recv(65536):
                buf += chunk
            closed = True
        except (TimeoutError, ConnectionResetError):
            closed = False
    return _frames(buf), closed


def _frames(buf: bytearray) -> list:
    messages = []
    while buf:
        header = P.parse_header(bytes(buf[:P.HEADER_SIZE]), MAX_FRAME)
        messages.append(P.decode_body(header, bytes(buf[P.HEADER_SIZE:P.HEADER_SIZE + header.length])))
        del buf[:P.HEADER_SIZE + header.length]
    return messages


HELLO = P.encode(P.Hello(TOKEN))
INFER_OK = P.encode(P.Infer(1, "dummy", b"abc"))


def test_health_and_infer(served):
    _, _, port = served
    with client(port) as c:
        health = c.health()
        assert health["model"] == "dummy" and health["status"] == "ok" and health["workers"] == 4
        assert c.model == "dummy" and c.server_info["max_frame"] == MAX_FRAME
        payload = bytes(range(200)) * 5
        reply = c.infer("dummy", payload)
        np.testing.assert_array_equal(reply.scores, expected_scores(payload))
        assert reply.decode_ms == 1.0 and reply.tail_ms == 2.0
        assert 0 <= reply.queue_wait_ms <= reply.server_ms <= reply.wall_ms
        assert reply.connect_ms == 0.0  # health() opened the connection, infer() reused it
        assert reply.request_bytes == P.HEADER_SIZE + 9 + len("dummy") + len(payload)
        assert reply.timings()["network_ms"] == pytest.approx(reply.wall_ms - reply.server_ms)
        second = c.infer("dummy", b"xyz")
        assert second.request_id == reply.request_id + 1
        assert c.health()["requests"] == 2


@pytest.mark.parametrize("payload, code, words", [
    (b"codec-error", ErrorCode.BAD_PAYLOAD, "bad magic"),
    (b"unknown-bits", ErrorCode.UNSUPPORTED, "bitwidth 5"),
    (b"bug", ErrorCode.INTERNAL, "see the server log"),
    (b"5d", ErrorCode.INTERNAL, "see the server log"),
])
def test_handler_errors_reach_the_client_and_the_server_goes_on(served, payload, code, words):
    _, _, port = served
    with client(port) as c:
        with pytest.raises(ServerError, match=words) as info:
            c.infer("dummy", payload)
        assert info.value.code == code and isinstance(info.value, RuntimeErrorReply)
        assert c.available(), "a server that says no is not a server that is down"
        assert c.infer("dummy", b"ok").scores[0] == 2  # reconnects after the server closed


def test_wrong_model_and_wrong_token(served):
    _, _, port = served
    with client(port) as c:
        with pytest.raises(ServerError, match="holds model 'dummy', not 'resnet'") as info:
            c.infer("resnet", b"abc")
        assert info.value.code == ErrorCode.WRONG_MODEL
    with client(port, token="guess") as c, pytest.raises(ServerError, match="token") as info:
        c.infer("dummy", b"abc")
    assert info.value.code == ErrorCode.AUTH


def _header(msg_type: int, length: int) -> bytes:
    return P.HEADER.pack(P.MAGIC, P.VERSION, msg_type, 0, length)


BAD_INPUTS = {
    "garbage": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ErrorCode.BAD_FRAME, False),
    "truncated": (HELLO + _header(P.MsgType.INFER, 100) + b"x" * 10, ErrorCode.BAD_FRAME, True),
    "truncated-header": (HELLO + INFER_OK[:5], ErrorCode.BAD_FRAME, True),
    "oversized": (HELLO + _header(P.MsgType.INFER, MAX_FRAME + 1), ErrorCode.TOO_LARGE, False),
    "wrong-token": (P.encode(P.Hello("nope")) + INFER_OK, ErrorCode.AUTH, False),
    "no-hello": (INFER_OK, ErrorCode.AUTH, False),
    "unknown-type": (HELLO + _header(42, 0), ErrorCode.UNKNOWN_TYPE, False),
    "client-sends-result": (HELLO + P.encode(P.Scores(1, np.zeros(2))), ErrorCode.UNKNOWN_TYPE, False),
    "bad-infer-body": (HELLO + _header(P.MsgType.INFER, 9) + struct.pack("!QB", 1, 0), ErrorCode.BAD_FRAME, False),
    "silent": (b"", ErrorCode.TIMEOUT, False),
    "stalled-body": (HELLO + _header(P.MsgType.INFER, 100) + b"x" * 10, ErrorCode.TIMEOUT, False),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_frames_get_an_error_and_do_not_kill_the_server(served, name):
    server, _, port = served
    data, code, half_close = BAD_INPUTS[name]
    with client(port) as good:  # a client connected before keeps working too
        good.health()
        messages, closed = raw_exchange(port, data, half_close)
        assert closed, "the server must close a connection after a bad frame"
        errors = [m for m in messages if isinstance(m, P.Error)]
        assert [e.code for e in errors] == [code], messages
        assert good.infer("dummy", b"still here").scores[0] == 10
    with client(port) as fresh:
        assert fresh.infer("dummy", b"abc").scores[0] == 3
        assert fresh.health()["errors"] == 1


def test_client_refuses_a_request_beyond_the_servers_limit_before_sending(served):
    _, _, port = served
    with client(port) as c:
        with pytest.raises(ServerError, match="exceeds the server's limit") as info:
            c.infer("dummy", b"x" * (2 * MAX_FRAME))
        assert info.value.code == ErrorCode.TOO_LARGE
        health = c.health()
        assert health["errors"] == 0 and health["requests"] == 0


def test_slow_request_does_not_delay_another_client(served):
    _, handler, port = served
    slow_reply = {}
    with client(port) as slow, client(port) as fast:
        slow.connect()
        fast.connect()
        thread = threading.Thread(target=lambda: slow_reply.update(r=slow.infer("dummy", b"sleep:1.0")))
        t0 = time.monotonic()
        thread.start()
        assert handler.slow_started.wait(2.0)
        reply = fast.infer("dummy", b"quick")
        fast_done = time.monotonic() - t0
        assert thread.is_alive(), "the fast request finished before the slow one"
        assert fast_done < 0.5 and reply.wall_ms < 300
        thread.join(3.0)
    assert slow_reply["r"].server_ms >= 1000 * 0.9


def test_fallback_when_nothing_listens_and_recovery():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    c = client(port, backoff_s=0.2, backoff_max_s=1.0)
    with pytest.raises(CloudUnavailable, match="unreachable") as info:
        c.infer("dummy", b"abc")
    assert isinstance(info.value, PlannerError)
    assert not c.available() and 0.1 < c.backoff_remaining_s() <= 0.2
    with pytest.raises(CloudUnavailable):
        c.infer("dummy", b"abc")
    assert c.failures == 2 and 0.2 < c.backoff_remaining_s() <= 0.4  # exponential
    server, _, _ = start(port=port)
    try:
        time.sleep(c.backoff_remaining_s())
        assert c.available()
        assert c.infer("dummy", b"abc").scores[0] == 3
        assert c.failures == 0 and c.available()
    finally:
        server.stop_thread()
        c.close()


def test_server_stopping_mid_session_means_fallback_not_hang():
    server, _, port = start()
    c = client(port)
    try:
        c.infer("dummy", b"abc")
        t0 = time.monotonic()
        server.stop_thread()
        assert time.monotonic() - t0 < 1.0, "stop() must hang up idle connections at once"
        with pytest.raises(CloudUnavailable):
            c.infer("dummy", b"abc")
    finally:
        c.close()


def test_client_reconnects_after_the_server_dropped_an_idle_connection():
    server, _, port = start(idle_timeout=0.2)
    try:
        with client(port) as c:
            assert c.infer("dummy", b"a").connect_ms > 0
            assert c.infer("dummy", b"b").connect_ms == 0
            time.sleep(0.4)  # the server says TIMEOUT and hangs up meanwhile
            reply = c.infer("dummy", b"c")
            assert reply.connect_ms > 0 and reply.scores[0] == 1 and c.failures == 0
    finally:
        server.stop_thread()


def test_client_timeout_is_a_fallback(served):
    _, _, port = served
    with client(port, timeout=0.3) as c:
        t0 = time.monotonic()
        with pytest.raises(CloudUnavailable, match="timed out"):
            c.infer("dummy", b"sleep:1.0")
        assert time.monotonic() - t0 < 0.6
        assert not c.available()


def test_a_full_server_closes_its_longest_idle_connection_for_a_new_client():
    server, _, port = start(max_connections=1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3.0) as holder:
            holder.sendall(HELLO)
            assert isinstance(read_frame(holder), P.Welcome)  # the one slot is taken, and idle
            with client(port) as newcomer:
                assert newcomer.infer("dummy", b"abc").scores[0] == 3
            messages, _ = _read_all(holder)
            assert [m.code for m in messages if isinstance(m, P.Error)] == [ErrorCode.BUSY]
    finally:
        server.stop_thread()


def test_a_server_whose_connections_all_compute_is_busy():
    server, handler, port = start(max_connections=1)
    try:
        with client(port) as busy:
            thread = threading.Thread(target=busy.infer, args=("dummy", b"sleep:1.0"))
            thread.start()
            assert handler.slow_started.wait(2.0)
            with pytest.raises(CloudUnavailable, match="too many connections"):
                client(port).infer("dummy", b"abc")
            thread.join()
    finally:
        server.stop_thread()


def read_frame(sock: socket.socket):
    """Exactly one frame from a blocking socket."""
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "closed mid-frame"
            buf += chunk
        return buf
    header = P.parse_header(exactly(P.HEADER_SIZE), MAX_FRAME)
    return P.decode_body(header, exactly(header.length))


def _read_all(sock: socket.socket) -> tuple[list, bytes]:
    """Every frame until the peer closes: (messages, raw bytes)."""
    buf = bytearray()
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            buf += chunk
    return _frames(bytearray(buf)), bytes(buf)


def test_address_parsing():
    assert parse_address("127.0.0.1:7000") == ("127.0.0.1", 7000)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("localhost", "host:0", "host:http", ":7000"):
        with pytest.raises(PlannerError, match="bad cloud address"):
            parse_address(bad)


def test_transport_never_unpickles():
    runtime = Path(__file__).resolve().parents[1] / "planner" / "runtime"
    for name in ("protocol.py", "server.py", "client.py", "shaper.py"):
        text = (runtime / name).read_text()
        assert not re.search(r"import pickle|pickle\.loads?\(|torch\.load\(|import torch", text), name


SERVE_SCRIPT = textwrap.dedent("""
    import numpy as np
    from planner.runtime.server import CloudServer

    class Echo:
        model = "echo"
        def infer(self, payload):
            return np.ones(2), {}

    CloudServer(Echo(), port=0).serve_forever(on_ready=lambda port: print("ready", port, flush=True))
    print("stopped", flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_forever_stops_cleanly_on_signal(sig):
    proc = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
        port = int(line.split()[1])
        with CloudClient(f"127.0.0.1:{port}") as c:
            assert c.infer("echo", b"x").scores.tolist() == [1.0, 1.0]
            proc.send_signal(sig)
            assert proc.wait(timeout=10) == 0
        assert proc.stdout.read().strip() == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------- CLI


@pytest.mark.parametrize("text, size", [("64MiB", 64 << 20), ("512KB", 512_000), ("1000", 1000), ("3B", 3),
                                        ("1.5KiB", 1536), ("2 MB", 2_000_000)])
def test_parse_size(text, size):
    from planner.cli.serve import parse_size

    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "12XB", "-5MB", "0"])
def test_parse_size_rejects(text):
    from planner.cli.serve import parse_size

    with pytest.raises(PlannerError, match="size"):
        parse_size(text)


def test_serve_command_is_registered():
    from planner.cli import build_parser

    args = build_parser().parse_args(["serve", "--model", "vgg", "--max-frame", "1MiB", "--port", "0"])
    assert args.max_frame == 1 << 20 and args.host == "127.0.0.1" and args.port == 0
    assert build_parser().parse_args(["serve", "--model", "vgg"]).max_frame == 64 << 20
