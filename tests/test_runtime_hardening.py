"""Hostile clients, broken servers, threads and TLS (issue 17), on loopback with small volumes.

The server side uses the tiny CNN of test_runtime_e2e behind a real `CloudHandler` (so batch bombs are real
codec payloads); the edge side runs `EdgeClient` / `planner.run` against real and deliberately broken servers.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import threading
import time
import warnings

import numpy as np
import pytest
from test_runtime_e2e import make_pipeline, make_profiles

import planner
from planner.compress import codec
from planner.runtime import protocol as P
from planner.runtime.broken import KINDS, BrokenServer
from planner.runtime.client import BadReply, CloudClient, CloudUnavailable, ServerError
from planner.runtime.edge import EdgeClient
from planner.runtime.handlers import CloudHandler
from planner.runtime.protocol import ErrorCode
from planner.runtime.server import CloudServer
from planner.runtime.tls import TLSError, client_context, is_loopback, server_context

TOKEN = "hardening-token"


@pytest.fixture(scope="module")
def pipe():
    return make_pipeline()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def profiles(pipe, images):
    return make_profiles(pipe, images[:1])


def serve(pipe, **kw) -> CloudServer:
    opts = dict(port=0, token=TOKEN, workers=2, read_timeout=0.5, idle_timeout=5.0)
    server = CloudServer(CloudHandler(pipe), **{**opts, **kw})
    server.start_in_thread()
    return server


@pytest.fixture(scope="module")
def server(pipe):
    srv = serve(pipe, max_batch=8, max_unauthenticated=8, max_connections=32)
    yield srv
    srv.stop_thread()


def cloud(srv: CloudServer, **kw) -> CloudClient:
    return CloudClient(f"127.0.0.1:{srv.port}", **{"token": TOKEN, "timeout": 3.0, **kw})


def edge(pipe, profiles, address: str, **kw) -> EdgeClient:
    opts = dict(cloud=address, link="50mbit", rtt="1ms", timeout=2.0, backoff_s=0.2, token=TOKEN,
                calibrate=False, explore=0.0, freshness_runs=0)  # plan on the hand-made profiles as they are
    return EdgeClient(pipe, *profiles, **{**opts, **kw})


# ------------------------------------------------------------------------------------ bounded work per request

BOMBS = {  # cut -> a small payload declaring a large batch (zeros compress to almost nothing)
    "pool1": lambda: codec.encode(np.zeros((4000, 8, 14, 14), np.float32), "pool1", mode="float32", lossless="zlib"),
    "input": lambda: codec.encode(np.zeros((40000, 28, 28), np.uint8), "input", mode="uint8", lossless="zlib"),
    "output": lambda: codec.encode(np.zeros((40000, 10), np.float32), "output", mode="float32", lossless="zlib"),
}


@pytest.mark.parametrize("cut", list(BOMBS))
def test_a_batch_bomb_is_refused_from_its_header_and_the_server_goes_on(server, cut):
    payload = BOMBS[cut]()
    assert len(payload) < 200_000
    with cloud(server) as c:
        t0 = time.monotonic()
        with pytest.raises(ServerError, match="declares a batch of") as info:
            c.infer("tiny", payload)
        assert time.monotonic() - t0 < 1.0
        assert info.value.code == ErrorCode.TOO_LARGE
        ok = codec.encode(np.zeros((2, 28, 28), np.uint8), "input", mode="uint8")
        assert c.infer("tiny", ok).scores.shape == (2, 10)


def test_the_output_cut_is_not_echoed_back(server):
    with cloud(server) as c, pytest.raises(ServerError, match="nothing left to run"):
        c.infer("tiny", codec.encode(np.zeros((1, 10), np.float32), "output", mode="float32"))


class _Slow:
    """A handler whose answers are as slow or as large as the payload says."""

    model = "slow"

    def infer(self, payload: bytes):
        kind, _, value = payload.decode().partition(":")
        if kind == "sleep":
            time.sleep(float(value))
            return np.zeros((1, 10)), {}
        return np.zeros((1, int(value))), {}


def test_compute_deadline_and_reply_bound_answer_with_an_error():
    srv = CloudServer(_Slow(), port=0, workers=2, compute_timeout=0.3, max_reply=4096)
    srv.start_in_thread()
    try:
        with CloudClient(f"127.0.0.1:{srv.port}", timeout=3.0) as c:
            t0 = time.monotonic()
            with pytest.raises(CloudUnavailable, match="compute deadline of 0.3 s"):
                c.infer("slow", b"sleep:2")
            assert time.monotonic() - t0 < 1.0
        with CloudClient(f"127.0.0.1:{srv.port}", timeout=3.0) as c:
            with pytest.raises(ServerError, match="above the limit of 4096 bytes") as info:
                c.infer("slow", b"size:5000")
            assert info.value.code == ErrorCode.TOO_LARGE
        with CloudClient(f"127.0.0.1:{srv.port}", timeout=3.0) as c:
            assert c.infer("slow", b"size:10").scores.shape == (1, 10)
    finally:
        srv.stop_thread()


# ------------------------------------------------------------------------------------ before authentication

def _hello_header(length: int) -> bytes:
    return P.pack_header(P.MsgType.HELLO, length)


def _first_error(sock: socket.socket) -> P.Error:
    sock.settimeout(3.0)
    buf = b""
    while len(buf) < P.HEADER_SIZE:
        chunk = sock.recv(P.HEADER_SIZE - len(buf))
        assert chunk, "closed without an ERROR"
        buf += chunk
    header = P.parse_header(buf, P.DEFAULT_MAX_FRAME)
    body = b""
    while len(body) < header.length:
        body += sock.recv(header.length - len(body))
    msg = P.decode_body(header, body)
    assert isinstance(msg, P.Error), msg
    return msg


def test_a_large_hello_is_refused_on_its_header(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        t0 = time.monotonic()
        sock.sendall(_hello_header(63 * 2**20) + b"x" * 1000)  # the rest of the body never comes
        err = _first_error(sock)
        assert err.code == ErrorCode.TOO_LARGE and "before authentication" in err.message
        assert time.monotonic() - t0 < 0.4  # at once, not after the read timeout


def test_one_deadline_for_the_whole_hello_however_it_trickles(server):
    hello = P.encode(P.Hello(TOKEN))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        t0 = time.monotonic()
        closed_at = None
        for byte in hello[:-1]:  # one byte per 0.1 s: each arrives well within the 0.5 s read timeout
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
            sock.setblocking(False)
            try:
                if sock.recv(1 << 16) is not None:
                    closed_at = time.monotonic()
                    break
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
        assert closed_at is not None and closed_at - t0 < 1.0


def test_a_trickled_body_after_auth_meets_one_deadline(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(P.encode(P.Hello(TOKEN)))
        sock.recv(4096)  # WELCOME
        sock.sendall(P.pack_header(P.MsgType.INFER, 1000))
        t0 = time.monotonic()
        sock.settimeout(0.1)
        error = None
        while time.monotonic() - t0 < 3.0 and error is None:
            try:
                sock.sendall(b"x")
                data = sock.recv(4096)
                error = data or b"closed"
            except TimeoutError:
                continue
            except OSError:
                error = b"closed"
        assert error is not None and time.monotonic() - t0 < 1.5


def _trickle(port: int, stop: threading.Event, opened: list) -> None:
    """Keep one connection open that sends a byte of HELLO now and then, reconnecting when dropped."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                opened.append(1)
                while not stop.wait(0.2):
                    sock.sendall(b"P")
        except OSError:
            stop.wait(0.05)


def test_trickling_unauthenticated_connections_do_not_lock_out_a_client(server):
    stop, opened = threading.Event(), []
    threads = [threading.Thread(target=_trickle, args=(server.port, stop, opened), daemon=True) for _ in range(40)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        assert server.health()["connections"] <= server.max_unauthenticated + 1
        payload = codec.encode(np.zeros((1, 28, 28), np.uint8), "input", mode="uint8")
        waits = []
        for _ in range(10):  # a fresh connection each time: the worst case, HELLO among the tricklers
            with cloud(server, timeout=1.0) as c:
                t0 = time.monotonic()
                c.infer("tiny", payload)
                waits.append(time.monotonic() - t0)
        assert max(waits) < 1.0 and len(opened) >= 40
    finally:
        stop.set()
        for t in threads:
            t.join(3.0)


def test_idle_authenticated_connections_give_way_to_new_clients(pipe):
    srv = serve(pipe, token=None, max_connections=10)
    holders = []
    try:
        for _ in range(20):  # twice the cap, each authenticated and then idle
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(P.encode(P.Hello("")))
            holders.append(s)
        deadline = time.monotonic() + 5.0  # until the server has seen all 20 (a loaded box is slow to accept)
        while srv.stats["connections"] < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.health()["connections"] <= 10 and srv.stats["evicted"] >= 10
        with CloudClient(f"127.0.0.1:{srv.port}", timeout=2.0) as c:
            assert c.infer("tiny", codec.encode(np.zeros((1, 28, 28), np.uint8), "input", mode="uint8")).scores.size
    finally:
        for s in holders:
            s.close()
        srv.stop_thread()


def test_auth_failures_back_off_instead_of_reconnecting_per_request(server, pipe, profiles, images):
    before = server.stats["connections"]
    with edge(pipe, profiles, f"127.0.0.1:{server.port}", token="wrong", backoff_s=5.0) as client:
        report = client.run(images)
    assert report.fallbacks == len(images) and report.errors == 0
    assert "AUTH" in report.results[0].fallback_reason
    assert all("AUTH" in r.fallback_reason for r in report.results[1:])  # backing off, and says after what
    assert server.stats["connections"] - before == 1
    assert client.client.auth_failures == 1 and client.client.answers == 0


# ------------------------------------------------------------------------------------ broken servers

@pytest.mark.parametrize("kind", KINDS)
def test_a_broken_server_never_breaks_the_edge(kind, pipe, profiles, images):
    with BrokenServer(kind, "tiny", timeout_s=2.0, identity=pipe.identity()) as bad:
        with edge(pipe, profiles, bad.address, timeout=0.5) as client:
            report = client.run(images[:3])
    assert len(report.results) == 3 and report.errors == 0
    for r in report.results:
        assert r.prediction is not None and r.fallback and r.fallback_reason, (kind, r)
        assert np.isfinite(r.scores).all() and r.scores.shape == (1, 10)


def test_the_client_names_what_is_wrong_with_a_reply(pipe):
    expect = {"zero-dim": "shape ()", "empty": "shape (1, 0)", "nan": "not all finite", "inf": "not all finite",
              "wrong-shape": "shape (3, 11)", "wrong-id": "answers request 2"}
    for kind, words in expect.items():
        with BrokenServer(kind, "tiny") as bad, CloudClient(bad.address, timeout=1.0) as c:
            with pytest.raises(BadReply, match=words.replace("(", r"\(").replace(")", r"\)")):
                c.infer("tiny", b"payload", request_id=1, batch=1, classes=(10,))
            assert not c.available()


# ------------------------------------------------------------------------------------ threads

_SEEDED = threading.Lock()  # make_pipeline seeds torch's global RNG: one at a time, or the weights differ


def _run_in_thread(k: int, reports: list, failures: list, address: str, profiles, images) -> None:
    try:  # each thread traces its own model while the others run theirs
        with _SEEDED:
            pipe = make_pipeline()
        reports[k] = planner.run(images[:2], pipe, address, *profiles, link="50mbit", rtt="1ms",
                                 token=TOKEN, timeout=5.0, calibrate=False, freshness_runs=0)
    except Exception as exc:  # noqa: BLE001 - collected and reported by the test
        failures.append(f"{type(exc).__name__}: {exc}")


def test_planner_run_from_16_threads_for_3_rounds(server, profiles, images):
    address = f"127.0.0.1:{server.port}"
    for round_ in range(3):
        reports, failures = [None] * 16, []
        threads = [threading.Thread(target=_run_in_thread, args=(k, reports, failures, address, profiles, images))
                   for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60.0)
        assert not failures, (round_, failures[:3])
        assert all(r is not None and r.errors == 0 and len(r.results) == 2 for r in reports), round_
        assert all(x.prediction is not None for r in reports for x in r.results)


# ------------------------------------------------------------------------------------ TLS

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 / localhost: (cert file, key file), made with the `cryptography`
    package, or the `openssl` command where that is missing."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    try:
        _self_signed(cert, key)
    except ImportError:
        if not shutil.which("openssl"):
            pytest.skip("neither the cryptography package nor the openssl command is available")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


def _self_signed(cert, key) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    signed = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1)).add_extension(san, critical=False)
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .sign(private, hashes.SHA256()))
    cert.write_bytes(signed.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def test_tls_round_trip_and_refusals(pipe, certificate, profiles, images):
    cert, key = certificate
    srv = serve(pipe, ssl=server_context(cert, key))
    address = f"127.0.0.1:{srv.port}"
    payload = codec.encode(np.zeros((1, 28, 28), np.uint8), "input", mode="uint8")
    try:
        with CloudClient(address, token=TOKEN, tls=cert, timeout=3.0) as c:
            for _ in range(3):  # the kept-alive TLS connection is reused, not seen as stale
                assert c.infer("tiny", payload).connect_ms >= 0
            assert srv.stats["connections"] == 1
        with CloudClient(address, token=TOKEN, tls=True, timeout=3.0) as c:  # the system store does not know it
            with pytest.raises(CloudUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                c.infer("tiny", payload)
        with CloudClient(address, token=TOKEN, timeout=1.0) as c:  # plain TCP to a TLS server
            with pytest.raises(CloudUnavailable):
                c.infer("tiny", payload)
        report = planner.run(images[:2], pipe, address, *profiles, link="50mbit", rtt="1ms", token=TOKEN, tls=cert,
                             calibrate=False, freshness_runs=0)
        assert report.fallbacks == 0 and report.errors == 0
    finally:
        srv.stop_thread()


def test_tls_files_and_the_cleartext_token_warning(tmp_path, certificate):
    with pytest.raises(TLSError, match="does not exist"):
        server_context(tmp_path / "none.pem", tmp_path / "none.key")
    with pytest.raises(TLSError, match="cannot load TLS certificate"):
        server_context(certificate[1], certificate[1])
    with pytest.raises(TLSError, match="CA file"):
        client_context(tmp_path / "none.pem")
    assert client_context(None) is None and client_context(True) is not None
    assert is_loopback("127.0.0.5") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("10.0.0.1")
    with pytest.warns(UserWarning, match="cleartext"):
        CloudClient("10.0.0.1:7000", token="t")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CloudClient("10.0.0.1:7000", token="t", tls=certificate[0])
        CloudClient("127.0.0.1:7000", token="t")
        CloudClient("10.0.0.1:7000")
