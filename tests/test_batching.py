"""Dynamic batching in the cloud server: interleaved requests of different cuts, bitwidths and widths from many
connections, each answer equal to the unbatched one; a bad request fails alone; old clients keep working."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from planner.errors import CodecError, PlannerError
from planner.runtime import protocol as P
from planner.runtime.batching import BatchSettings, run_batch
from planner.runtime.client import CloudClient, ServerError
from planner.runtime.server import CloudServer
from planner.types import CandidateSpec

TOKEN = "tok"


@pytest.mark.parametrize("kw", [{"delay_ms": -1}, {"delay_ms": float("nan")}, {"delay_ms": 20_000},
                                {"max_inputs": 0}, {"max_inputs": 2.5}, {"delay_ms": True}])
def test_batch_settings_validate(kw):
    with pytest.raises(PlannerError):
        BatchSettings(**kw)


def test_batch_settings_defaults_and_off():
    from planner.config import DEFAULT_BATCH_DELAY_MS, DEFAULT_BATCH_MAX

    s = BatchSettings()
    assert (s.delay_ms, s.max_inputs) == (DEFAULT_BATCH_DELAY_MS, DEFAULT_BATCH_MAX) and s.enabled
    assert not BatchSettings.off().enabled and not BatchSettings(5.0, 1).enabled


class Echo:
    """Scores from the payload; no infer_batch, so run_batch calls infer once each."""

    model = "echo"

    def __init__(self) -> None:
        self.calls = 0

    def infer(self, payload: bytes):
        self.calls += 1
        if payload == b"bad":
            raise CodecError("not a feature")
        if payload == b"huge":
            return np.zeros((1, 100_000), np.float32), {}
        return np.array([[len(payload), payload[0]]], np.float32), {"decode_ms": 0.1, "tail_ms": 0.2}


def test_run_batch_without_infer_batch_calls_each_and_keeps_errors():
    h = Echo()
    out = run_batch(h, [b"ab", b"bad", b"c"])
    assert h.calls == 3 and isinstance(out[1], CodecError)
    assert out[0][0].tolist() == [[2, ord("a")]] and out[2][0].tolist() == [[1, ord("c")]]


def _concurrently(port: int, jobs: list[list[tuple[str, bytes]]], model: str) -> dict:
    """One client (connection) per job list, all at once; {label: reply or exception}."""
    out: dict = {}
    barrier = threading.Barrier(len(jobs))

    def run(job):
        with CloudClient(f"127.0.0.1:{port}", token=TOKEN, timeout=30.0) as c:
            c.connect()
            barrier.wait()
            for label, payload in job:
                try:
                    out[label] = c.infer(model, payload)
                except (ServerError, PlannerError) as exc:
                    out[label] = exc

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_batched_server_with_a_plain_handler_answers_each_and_fails_alone():
    server = CloudServer(Echo(), port=0, token=TOKEN, workers=2, max_reply=64 * 1024,
                         batching=BatchSettings(delay_ms=30.0, max_inputs=8))
    port = server.start_in_thread()
    try:
        jobs = [[(f"{i}-{k}", b"bad" if (i, k) == (1, 1) else b"huge" if (i, k) == (2, 0) else bytes([65 + i]) * (k + 1))
                 for k in range(3)] for i in range(6)]
        out = _concurrently(port, jobs, "echo")
    finally:
        server.stop_thread()
    for i in range(6):
        for k in range(3):
            r = out[f"{i}-{k}"]
            if (i, k) == (1, 1):
                assert isinstance(r, ServerError) and r.code == P.ErrorCode.BAD_PAYLOAD
            elif (i, k) == (2, 0):
                assert isinstance(r, ServerError) and r.code == P.ErrorCode.TOO_LARGE
            elif i not in (1, 2) or k == 0:  # after an ERROR the server closes that connection; the client reconnects
                assert r.scores.tolist() == [[k + 1, 65 + i]], (i, k)
    assert server.health()["batches"] < sum(map(len, jobs))  # some requests did share a batch


@pytest.fixture(scope="module")
def resnet():
    from planner.execution.pipeline import SplitPipeline
    from planner.runtime.handlers import CloudHandler

    pipeline = SplitPipeline.from_zoo("resnet-fmnist")
    return pipeline, CloudHandler(pipeline)


def _payloads(pipeline) -> dict[str, bytes]:
    """Candidates of every kind: codes at several cuts and bitwidths (the zoo autoencoder serves its widest width
    only), raw quantizer, raw float, input."""
    from planner.datasets import fashion_mnist

    images = fashion_mnist("test").raw
    out = {}
    specs = [CandidateSpec.split("relu_5", 4), CandidateSpec.split("relu_5", 1), CandidateSpec.split("relu_5", 2),
             CandidateSpec.split("relu_3", 8), CandidateSpec.split("stem_2", 3), CandidateSpec.quant("relu_5", 4),
             CandidateSpec.quant("relu_7", 6), CandidateSpec.raw("relu_3"), CandidateSpec.cloud_only()]
    for n, spec in enumerate(specs):
        for j in range(3):
            raw = images[7 * n + j: 7 * n + j + 1 + (j == 2)]  # some requests carry two inputs
            out[f"{spec.arg}#{j}"] = pipeline.edge_encode(raw, spec)[0]
    return out


@pytest.mark.slow
def test_interleaved_candidates_from_many_connections_equal_the_unbatched_answers(resnet):
    pipeline, handler = resnet
    payloads = _payloads(pipeline)
    labels = list(payloads)
    want = {k: handler.infer(p)[0] for k, p in payloads.items()}  # unbatched, one at a time
    payloads["corrupt"] = payloads[labels[0]][:-3] + b"\x00\x01\x02"
    labels.insert(5, "corrupt")
    jobs = [[(lab, payloads[lab]) for lab in labels[i::9]] for i in range(9)]  # interleaved over 9 connections
    server = CloudServer(handler, port=0, token=TOKEN, workers=2, batching=BatchSettings(delay_ms=40.0, max_inputs=64))
    port = server.start_in_thread()
    try:
        out = _concurrently(port, jobs, handler.model)
    finally:
        server.stop_thread()
    assert isinstance(out["corrupt"], ServerError) and out["corrupt"].code == P.ErrorCode.BAD_PAYLOAD
    answered = [k for k in want if not isinstance(out.get(k), Exception)]
    assert len(answered) >= len(want) - 1  # at most the one after "corrupt" on its connection is not (reconnects)
    for k in answered:
        reply = out[k]
        assert reply.scores.shape == want[k].shape, k
        np.testing.assert_allclose(reply.scores, want[k], rtol=1e-4, atol=1e-4, err_msg=k)
        assert (reply.scores.argmax(1) == want[k].argmax(1)).all(), k
        assert reply.batch_wait_ms is not None and 0 <= reply.batch_wait_ms <= reply.queue_wait_ms + 1e-6
    assert max(out[k].batch_size for k in answered) > 2  # requests of one candidate were computed together
    assert server.health()["batches"] < len(answered)


def test_infer_batch_groups_by_candidate_and_matches_infer(resnet):
    pipeline, handler = resnet
    payloads = list(_payloads(pipeline).values())[:9] + [b"garbage"]
    out = handler.infer_batch(payloads)
    assert isinstance(out[-1], CodecError)
    for payload, (scores, timings) in zip(payloads[:-1], out[:-1], strict=True):
        np.testing.assert_allclose(scores, handler.infer(payload)[0], rtol=1e-4, atol=1e-4)
        assert timings["batch_size"] >= scores.shape[0]
    assert out[0][1]["batch_size"] == 4  # three requests of relu_5@4, one carrying two inputs


def test_old_client_gets_the_old_result_frame():
    """A client that never sets the flag (an older planner) gets RESULT with flags 0 and the four timings."""
    server = CloudServer(Echo(), port=0, token=TOKEN, batching=BatchSettings(delay_ms=5.0, max_inputs=4))
    port = server.start_in_thread()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(P.encode(P.Hello(TOKEN)) + P.encode(P.Infer(7, "echo", b"xyz")))
            buf = b""
            deadline = time.monotonic() + 5
            frames = []
            while len(frames) < 2 and time.monotonic() < deadline:
                buf += sock.recv(65536)
                while len(buf) >= P.HEADER_SIZE:
                    h = P.parse_header(buf[:P.HEADER_SIZE], 1 << 20)
                    if len(buf) < P.HEADER_SIZE + h.length:
                        break
                    frames.append((h, buf[P.HEADER_SIZE:P.HEADER_SIZE + h.length]))
                    buf = buf[P.HEADER_SIZE + h.length:]
        (wh, wbody), (rh, rbody) = frames
        assert P.Welcome.from_body(wbody).info["features"] == P.FEATURE_BATCH_TIMINGS
        assert rh.type == P.MsgType.RESULT and rh.flags == 0
        reply = P.Scores.from_body(rbody)  # the pre-batching parser: no trailing bytes
        assert reply.request_id == 7 and reply.batch_wait_ms is None
    finally:
        server.stop_thread()


def test_batch_timings_round_trip_and_flags_are_checked():
    s = P.Scores(3, np.ones((1, 2), np.float32), 1.0, 0.5, 0.25, 2.0, batch_wait_ms=0.75, batch_size=5)
    back = P.decode(P.encode(s))
    assert (back.batch_wait_ms, back.batch_size, back.request_id) == (0.75, 5, 3)
    assert P.decode(P.encode(P.Infer(1, "m", b"x", batch_timings=True))).batch_timings
    with pytest.raises(P.ProtocolError, match="flags"):
        P.parse_header(P.pack_header(P.MsgType.HELLO, 4, flags=P.FLAG_BATCH_TIMINGS), 1 << 20)
    with pytest.raises(P.ProtocolError, match="flags"):
        P.parse_header(P.pack_header(P.MsgType.INFER, 4, flags=0x0002), 1 << 20)


def test_serve_batching_flags_are_checked_before_any_work(capsys):
    from planner.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--model", "resnet-fmnist", "--batch-delay-ms", "-1"])
    assert exc.value.code == 2
    assert main(["serve", "--model", "resnet-fmnist", "--port", "0", "--device", "cpu",
                 "--batch-delay-ms", "20000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "batch delay" in err[-1] and len([line for line in err if "error" in line]) >= 1


def test_a_lone_request_on_an_idle_server_does_not_wait_for_the_delay():
    """Batches form while the server computes; a request reaching an idle server starts at once (a lone edge pays
    no batch delay), even with a long delay configured."""
    server = CloudServer(Echo(), port=0, token=TOKEN, batching=BatchSettings(delay_ms=2_000.0, max_inputs=8))
    port = server.start_in_thread()
    try:
        with CloudClient(f"127.0.0.1:{port}", token=TOKEN, timeout=30.0) as c:
            c.connect()
            for k in range(3):
                t0 = time.perf_counter()
                reply = c.infer("echo", b"x" * (k + 1))
                assert time.perf_counter() - t0 < 1.0 and reply.scores.tolist() == [[k + 1, ord("x")]]
                assert reply.batch_wait_ms is not None and reply.batch_wait_ms < 500
    finally:
        server.stop_thread()
