"""The README's promises: its `planner.run()` example runs as written against a real local server, and the
main job (`planner demo --fast`) plans and runs both default links with the committed profiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from planner.cli import main as cli_main
from planner.data import DEFAULT_ROOT

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not DEFAULT_ROOT.exists(), reason="apt-get install dataset-fashion-mnist")


def readme_example() -> str:
    """The Python block of the README's "In an application" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### In an application", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_run_example_runs_against_a_local_server(capsys):
    from planner.runtime.local import ServerProcess

    code = readme_example()
    assert "planner.run(" in code and "127.0.0.1:7000" in code
    with ServerProcess("resnet-fmnist", "shared") as server:
        scope: dict = {}
        exec(compile(code.replace("127.0.0.1:7000", server.address), "README.md", "exec"), scope)
    report = scope["report"]
    assert len(report) == 20 and report.errors == 0 and report.fallbacks == 0
    assert report.accuracy is not None and report.accuracy >= 80.0
    assert "accuracy" in capsys.readouterr().out


def test_demo_fast_plans_and_runs_both_links(tmp_path, capsys):
    out = tmp_path / "demo.json"
    assert cli_main(["demo", "--fast", "--n", "6", "--baseline-n", "2", "--edge-cpu-quota", "0",
                     "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "local cloud server stopped" in text and "speed-up vs best end" in text
    assert text.count("mJ per request on LTE") == 2  # the energy of each plan next to its latency
    import json

    rows = json.loads(out.read_text())["links"]
    assert [r["link"] for r in rows] == ["0.3mbit/60ms", "20mbit/20ms"]
    for r in rows:
        assert r["errors"] == 0 and sum(r["plans"].values()) + r["fallbacks"] == 6
        assert r["edge_only"]["n"] == 2 and r["cloud_only"]["n"] == 2
        assert r["measured_ms_median"] > 0


def test_demo_rejects_bad_links():
    from planner.cli.demo import parse_links
    from planner.errors import PlannerError

    assert parse_links("1mbit/5ms, 2MB/s/0ms") == [("1mbit", "5ms"), ("2MB/s", "0ms")]
    for bad in ("1mbit", "fast/5ms", "1mbit/soon", ""):
        with pytest.raises(PlannerError):
            parse_links(bad)
