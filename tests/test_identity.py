"""Identity is always checked: every backend announces weights digest, autoencoder and quantizer ids; the edge
refuses a server that leaves one out; TLS handshakes count toward the unauthenticated cap; a TLS/plain mismatch
is one line and exit 2 from `planner run`."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from planner.errors import MismatchError
from planner.runtime import protocol as P
from planner.runtime.client import CloudClient, TLSMismatch
from planner.runtime.handlers import CloudHandler
from planner.runtime.server import CloudServer
from planner.runtime.tls import server_context


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    from test_runtime_e2e import vgg_with_raw_profiles

    d = tmp_path_factory.mktemp("identity")
    return vgg_with_raw_profiles(d), d


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    try:
        from test_runtime_hardening import _self_signed

        _self_signed(cert, key)
    except ImportError:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


class WithoutDigest(CloudHandler):
    """A handler of an older server: it does not announce the weights digest."""

    def identity(self):
        return {k: v for k, v in super().identity().items() if k != "weights_sha256"}


def _edge(pipe, folder, address, **kw):
    from planner.runtime.edge import EdgeClient

    return EdgeClient(pipe, folder / "e.json", folder / "c.json", cloud=address, link="50mbit", rtt="1ms",
                      calibrate=False, freshness_runs=0, warm=False, timeout=2.0, **kw)


def test_every_identity_key_is_announced_and_checked(vgg):
    pipe, folder = vgg
    server = CloudServer(CloudHandler(pipe), port=0)
    address = f"127.0.0.1:{server.start_in_thread()}"
    try:
        info = server.welcome()
        assert set(P.IDENTITY_KEYS) <= set(info) and info["weights_sha256"] == pipe.weights_sha256
        with _edge(pipe, folder, address) as edge:
            assert edge.check_cloud()["quantizer"] == pipe.quant_id
    finally:
        server.stop_thread()


def test_the_edge_refuses_a_server_that_does_not_announce_the_weights_digest(vgg):
    pipe, folder = vgg
    server = CloudServer(WithoutDigest(pipe), port=0)
    address = f"127.0.0.1:{server.start_in_thread()}"
    try:
        assert "weights_sha256" not in server.welcome()
        with _edge(pipe, folder, address) as edge:
            with pytest.raises(MismatchError, match="does not announce its weights_sha256"):
                edge.check_cloud()
        with _edge(pipe, folder, address, strict_identity=False) as edge:  # told otherwise, explicitly
            assert edge.check_cloud() is not None
    finally:
        server.stop_thread()


def test_tls_handshakes_count_toward_the_unauthenticated_cap(vgg, certificate):
    pipe, _ = vgg
    server = CloudServer(CloudHandler(pipe, warm=False), port=0, max_unauthenticated=2, read_timeout=5.0,
                         ssl=server_context(*certificate))
    port = server.start_in_thread()
    stalled = []
    try:
        for _ in range(4):  # TCP connections that never start their TLS handshake
            stalled.append(socket.create_connection(("127.0.0.1", port), timeout=2.0))
            time.sleep(0.1)
        deadline = time.monotonic() + 3.0
        while server.stats["evicted"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.stats["evicted"] == 2  # the two oldest were dropped for the newcomers
        with CloudClient(f"127.0.0.1:{port}", tls=certificate[0], timeout=3.0) as c:  # a real client still gets in
            assert c.connect()["model"] == pipe.name
    finally:
        for s in stalled:
            s.close()
        server.stop_thread()


@pytest.mark.parametrize("server_tls", [True, False], ids=["plain-client-to-tls", "tls-client-to-plain"])
def test_a_tls_mismatch_is_one_line_and_exit_2(vgg, certificate, server_tls, capsys):
    from planner.cli import main

    pipe, folder = vgg
    server = CloudServer(CloudHandler(pipe), port=0, ssl=server_context(*certificate) if server_tls else None)
    port = server.start_in_thread()
    try:
        with CloudClient(f"127.0.0.1:{port}", tls=None if server_tls else certificate[0], timeout=2.0) as c:
            with pytest.raises(TLSMismatch, match="--tls-ca" if server_tls else "drop --tls"):
                c.connect()
        argv = ["run", "--model", "vgg-fmnist", "--cloud", f"127.0.0.1:{port}", "--bandwidth", "20mbit", "--rtt",
                "2ms", "--n", "2", "--edge", str(folder / "e.json"), "--cloud-profile", str(folder / "c.json")]
        rc = main(argv + ([] if server_tls else ["--tls-ca", certificate[0]]))
    finally:
        server.stop_thread()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("planner run")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert ("--tls-ca FILE" in lines[0]) if server_tls else ("drop --tls/--tls-ca" in lines[0])
