"""Token-bucket link shaper: schedule arithmetic on a fake clock, then real sockets at the configured rate and delay."""

from __future__ import annotations

import math
import socket
import threading
import time

import numpy as np
import pytest

from planner.errors import LinkError
from planner.runtime.client import CloudClient
from planner.runtime.server import CloudServer
from planner.runtime.shaper import Shaper, TokenBucket, sleep_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_constant_rate_serializes_bytes():
    clock = FakeClock()
    bucket = TokenBucket(8e6, clock=clock)  # 1 MB/s
    assert bucket.schedule(1_000_000) == pytest.approx(101.0)
    assert bucket.schedule(500_000) == pytest.approx(101.5), "bytes queue behind those already on the link"
    assert bucket.schedule(1_000_000, now=110.0) == pytest.approx(111.0), "an idle link starts at once"


def test_burst_lets_bytes_ahead_after_idle():
    clock = FakeClock()
    bucket = TokenBucket(8e6, burst_bytes=100_000, clock=clock)
    assert bucket.schedule(1_000_000) == pytest.approx(100.9)
    assert bucket.schedule(50_000) == pytest.approx(100.95)


def test_rate_function_with_outage():
    clock = FakeClock()
    trace = lambda t: 0.0 if t < 0.5 else 8e6  # noqa: E731 - outage, then 1 MB/s
    bucket = TokenBucket(trace, clock=clock, t0=clock.now)
    assert bucket.schedule(1_000_000) == pytest.approx(101.5, abs=0.006)
    dead = TokenBucket(lambda t: 0.0, clock=clock)
    assert dead.schedule(10) == math.inf
    assert dead.busy_until == -math.inf, "bytes that never get through must not block the link"
    with pytest.raises(TimeoutError):
        sleep_until(math.inf, deadline=clock.now + 5, clock=clock)


def test_rate_function_time_origin():
    clock = FakeClock()
    shaper = Shaper(lambda t: 16e6 if t < 1.0 else 8e6, clock=clock)
    assert shaper.transfer_s(1_000_000) == pytest.approx(0.5)
    clock.now += 2.0
    assert shaper.transfer_s(1_000_000) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs", [{"rate_bps": 0}, {"rate_bps": -5}, {"rate_bps": float("nan")},
                                    {"rate_bps": 1e6, "delay_ms": -1}, {"rate_bps": 1e6, "burst_bytes": -1},
                                    {"rate_bps": 1e6, "chunk_bytes": 0}])
def test_bad_settings(kwargs):
    with pytest.raises(LinkError):
        Shaper(**kwargs)


def test_rate_function_returning_nonsense_is_an_error():
    with pytest.raises(LinkError, match="rate function returned"):
        TokenBucket(lambda t: -1.0).schedule(100)


RATE = 12e6  # bits/s
DELAY_MS = 30.0
SIZE = 300_000


def _read_all(sock: socket.socket, n: int, stamps: list[float], recv=None) -> None:
    got = 0
    recv = recv or sock.recv
    while got < n:
        chunk = recv(65536)
        if not chunk:
            break
        got += len(chunk)
        stamps.append(time.monotonic())


def test_uplink_delivers_the_configured_rate_and_delay():
    a, b = socket.socketpair()
    stamps: list[float] = []
    with a, b:
        reader = threading.Thread(target=_read_all, args=(b, SIZE, stamps))
        reader.start()
        shaped = Shaper(RATE, DELAY_MS).wrap(a)
        t0 = time.monotonic()
        shaped.sendall(b"\x5a" * SIZE)
        reader.join(5.0)
    first, last = stamps[0] - t0, stamps[-1] - t0
    assert first >= DELAY_MS / 1000, "no byte may arrive before the one-way delay"
    rate = SIZE * 8 / (last - DELAY_MS / 1000)
    assert rate == pytest.approx(RATE, rel=0.10), f"measured {rate / 1e6:.2f} Mbit/s"


def test_downlink_delivers_the_configured_rate_and_delay():
    a, b = socket.socketpair()
    stamps: list[float] = []
    with a, b:
        shaped = Shaper(1e9, DELAY_MS, down_rate_bps=RATE).wrap(a)
        t0 = time.monotonic()
        threading.Thread(target=b.sendall, args=(b"\xa5" * SIZE,)).start()  # the peer sends at full speed
        _read_all(a, SIZE, stamps, recv=shaped.recv)
    assert sum(1 for _ in stamps) > 1
    first, last = stamps[0] - t0, stamps[-1] - t0
    assert first >= DELAY_MS / 1000
    rate = SIZE * 8 / (last - DELAY_MS / 1000)
    assert rate == pytest.approx(RATE, rel=0.10), f"measured {rate / 1e6:.2f} Mbit/s"


class Echo:
    model = "echo"

    def infer(self, payload: bytes):
        return np.zeros(1000, np.float32), {"decode_ms": 0.0, "tail_ms": 0.0}


def test_shaped_client_matches_the_link_model_end_to_end():
    server = CloudServer(Echo(), port=0)
    port = server.start_in_thread()
    shaper = Shaper(16e6, delay_ms=20.0)
    try:
        with CloudClient(f"127.0.0.1:{port}", shaper=shaper, timeout=5.0) as c:
            c.connect()
            reply = c.infer("echo", b"\x01" * 200_000)
    finally:
        server.stop_thread()
    predicted_ms = 2 * 20.0 + (reply.request_bytes + reply.reply_bytes) * 8 / 16e6 * 1000
    assert reply.network_ms == pytest.approx(predicted_ms, rel=0.10)
    assert reply.server_ms < 50


def test_connecting_costs_a_round_trip():
    server = CloudServer(Echo(), port=0)
    port = server.start_in_thread()
    try:
        with CloudClient(f"127.0.0.1:{port}", shaper=Shaper(1e9, delay_ms=25.0)) as c:
            reply = c.infer("echo", b"x")
    finally:
        server.stop_thread()
    assert reply.connect_ms >= 2 * 2 * 25.0  # TCP handshake + HELLO/WELCOME
    assert reply.wall_ms >= 2 * 25.0


def test_deadline_bounds_the_shaped_wait():
    a, b = socket.socketpair()
    with a, b:
        shaped = Shaper(8e3, 0.0).wrap(a)  # 1 kB/s
        with pytest.raises(TimeoutError):
            shaped.sendall(b"x" * 100_000, deadline=time.monotonic() + 0.1)
