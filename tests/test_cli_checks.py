"""Bad flags of `planner serve` / `run` / `plan`: one clear line and exit code 2, before any work starts."""

from __future__ import annotations

import socket
import time

import pytest

from planner.cli import main
from planner.cli.checks import join_negative_values

PROFILES = ["--edge", "profiles/vgg-fmnist_edge_epyc-1t.json", "--cloud-profile", "profiles/vgg-fmnist_cloud_epyc-2t.json"]
RUN = ["run", "--model", "vgg-fmnist", "--bandwidth", "10mbit", "--n", "2", *PROFILES]

CASES = {
    "port out of range": (["serve", "--model", "vgg-fmnist", "--port", "99999"], "port must be an integer in [0, 65535], got 99999"),
    "negative workers": (["serve", "--model", "vgg-fmnist", "--workers", "-1"], "workers must be an integer >= 1"),
    "nan read timeout": (["serve", "--model", "vgg-fmnist", "--read-timeout", "nan"], "finite number > 0 (seconds)"),
    "zero idle timeout": (["serve", "--model", "vgg-fmnist", "--idle-timeout", "0"], "finite number > 0 (seconds)"),
    "zero max batch": (["serve", "--model", "vgg-fmnist", "--max-batch", "0"], "max_batch must be an integer >= 1"),
    "unbindable host": (["serve", "--model", "vgg-fmnist", "--host", "192.0.2.1"], "cannot listen on 192.0.2.1"),
    "unknown host": (["serve", "--model", "vgg-fmnist", "--host", "no-such-host.invalid"], "unknown host"),
    "cert without key": (["serve", "--model", "vgg-fmnist", "--tls-cert", "pyproject.toml"], "go together"),
    "missing cert": (["serve", "--model", "vgg-fmnist", "--tls-cert", "x.pem", "--tls-key", "x.key"],
                     "not a readable file"),
    "results dir missing": ([*RUN, "--results", "/missing/dir/x.jsonl"], "does not exist"),
    "nan max loss": ([*RUN, "--max-loss", "nan"], "finite number >= 0"),
    "zero edge quota": ([*RUN, "--edge-cpu-quota", "0"], "in (0, 1]"),
    "edge quota above 1": ([*RUN, "--edge-cpu-quota", "1.5"], "in (0, 1]"),
    "nan timeout": ([*RUN, "--timeout", "nan"], "finite number > 0 (seconds)"),
    "negative bandwidth": ([*RUN[:4], "-5mbit", *RUN[5:]], "finite positive value, got '-5mbit'"),
    "negative bandwidth with =": ([*RUN[:3], "--bandwidth=-5mbit", *RUN[5:]], "got '-5mbit'"),
    "absurd bandwidth": ([*RUN[:4], "1e20gbit", *RUN[5:]], "not a plausible link"),
    "bad cloud port": ([*RUN, "--cloud", "127.0.0.1:99999"], "bad cloud address"),
    "zero requests": ([*RUN, "--n", "0"], "at least 1"),
    "tls to the local server": ([*RUN, "--cloud", "local", "--tls"], "need --cloud HOST:PORT"),
    "missing CA file": ([*RUN, "--tls-ca", "no-such-ca.pem"], "not a readable file"),
}


def _run(argv, capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_flag_is_one_line_and_exit_2_before_any_work(name, capsys):
    argv, words = CASES[name]
    t0 = time.monotonic()
    rc, err = _run(argv, capsys)
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, err
    assert time.monotonic() - t0 < 5.0  # nothing was loaded or run


def test_a_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, err = _run(["serve", "--model", "vgg-fmnist", "--port", str(port)], capsys)
    assert rc == 2 and "Address already in use" in err and len(err.strip().splitlines()) == 1, err


def test_an_absurd_trace_is_refused_not_planned_as_nan(tmp_path, capsys):
    trace = tmp_path / "absurd.tsv"
    trace.write_text("0 1e308\n1 1e308\n")
    rc, err = _run(["plan", "--edge", PROFILES[1], "--cloud", PROFILES[3], "--trace", str(trace)], capsys)
    assert rc == 2 and "not a plausible link" in err, err


def test_negative_values_are_joined_to_their_flag():
    assert join_negative_values(["--bandwidth", "-5mbit", "--rtt", "2ms"]) == ["--bandwidth=-5mbit", "--rtt", "2ms"]
    assert join_negative_values(["--n", "-.5"]) == ["--n=-.5"]
    assert join_negative_values(["--json", "--n", "3"]) == ["--json", "--n", "3"]
    assert join_negative_values(["--x=1", "-5"]) == ["--x=1", "-5"]


def test_a_run_refused_for_auth_says_so_and_fails(tmp_path, capsys):
    """`planner run --token wrong` against a server with another token: every request falls back, exit 2."""
    from test_runtime_e2e import vgg_with_raw_profiles

    from planner.runtime.handlers import CloudHandler
    from planner.runtime.server import CloudServer

    vgg = vgg_with_raw_profiles(tmp_path)
    server = CloudServer(CloudHandler(vgg), port=0, token="right")
    port = server.start_in_thread()
    try:
        rc, err = _run(["run", "--model", "vgg-fmnist", "--cloud", f"127.0.0.1:{port}", "--token", "wrong",
                        "--bandwidth", "20mbit", "--rtt", "2ms", "--n", "4", "--plan", "cloud-only", "--edge", str(tmp_path / "e.json"),
                        "--cloud-profile", str(tmp_path / "c.json"), "--results", str(tmp_path / "r.jsonl")], capsys)
    finally:
        server.stop_thread()
    assert rc == 2 and "AUTH" in err and "4 fell back" in err, err
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 4  # the results are still written
    assert server.stats["connections"] == 1  # backed off: no reconnect per request
