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
    assert "local cloud server stopped" in text and "speed-up vs better end" in text
    assert "where each choice wins" in text and "RTT 40 ms" in text and "RTT 10 ms" in text  # the breakpoints
    assert text.count("mJ per request on LTE") == 2  # the energy of each plan next to its latency
    import json

    rows = json.loads(out.read_text())["links"]
    assert [r["link"] for r in rows] == ["1mbit/40ms", "50mbit/10ms"]
    for r in rows:
        assert r["errors"] == 0 and sum(r["plans"].values()) + r["fallbacks"] == 6
        assert r["edge_only"]["n"] == 2 and r["cloud_only"]["n"] == 2
        assert r["measured_ms_median"] > 0 and r["metric"] == "accuracy"
        assert r["cloud_only"]["plan"].startswith("cloud-only") and r["edge_only"]["plan"] == "edge-only"
        line = next(ln for ln in text.splitlines() if ln.startswith(r["link"] + " "))
        # the speed-up is shown only for a plan that splits: an end against the ends is timing noise
        assert ("(plan is an end)" in line) == r["plan_is_end"] and line.rstrip().endswith("x") != r["plan_is_end"]


def test_demo_rejects_bad_links():
    from planner.cli.demo import parse_links
    from planner.errors import PlannerError

    assert parse_links("1mbit/5ms, 2MB/s/0ms") == [("1mbit", "5ms"), ("2MB/s", "0ms")]
    for bad in ("1mbit", "fast/5ms", "1mbit/soon", ""):
        with pytest.raises(PlannerError):
            parse_links(bad)


def test_results_table_shows_a_speed_up_only_for_a_split():
    from planner.cli.demo import format_results

    def row(link, plan, is_end, measured, edge, cloud, metric="agreement"):
        return {"link": link, "plan": plan, "plan_is_end": is_end, "metric": metric, "accuracy": 99.0,
                "measured_ms_median": measured, "predicted_ms_median": measured * 1.05, "prediction_error": 0.05,
                "edge_only": {"measured_ms_median": edge}, "cloud_only": {"measured_ms_median": cloud,
                                                                          "sends": "jpeg90"}}

    text = format_results([row("1mbit/40ms", "add_3 @ 4 bits", False, 100.0, 300.0, 200.0),
                           row("50mbit/10ms", "cloud-only jpeg90", True, 50.0, 300.0, 50.0)])
    lines = text.splitlines()
    assert "agreement %" in lines[0] and "speed-up vs better end" in lines[0]
    assert lines[1].rstrip().endswith("2.00x") and "jpeg90" in lines[1]  # 200 ms (better end) / 100 ms
    assert lines[2].rstrip().endswith("(plan is an end)") and "x " not in lines[2][-20:]


def test_breakpoints_table_names_each_change():
    from planner.cli.demo import format_breakpoints
    from planner.profile.synthetic import synthetic_pair
    from planner.solve import CandidateSet

    cs = CandidateSet(*synthetic_pair(0), edge_slowdown=8.0)
    text = format_breakpoints(cs, [10.0, 40.0], max_loss=1.0)
    for rtt in (10.0, 40.0):
        points = cs.breakpoints(rtt=rtt, max_loss=1.0)
        block = text.split(f"RTT {rtt:g} ms:")[1].split("RTT ")[0]
        assert points and block.count("from ") == len(points)  # one line per change of the best candidate
        assert all(b.above.label in block for b in points)


@pytest.mark.slow
def test_main_job_story_on_efficientnet(tmp_path, capsys):
    """The main job's model (scripts/main.sh picks it once its autoencoder and committed profiles are here):
    agreement, not accuracy, on the unlabelled photo crops, both links, the ends in the same run."""
    import json

    if not ((ROOT / "planner/compress/weights/efficientnet-lite0-shared.pt").exists()
            and list((ROOT / "profiles").glob("efficientnet-lite0_edge_*-1t.json"))):
        pytest.skip("efficientnet-lite0's shared autoencoder and committed profiles are not in this checkout yet")
    out = tmp_path / "demo.json"
    assert cli_main(["demo", "--model", "efficientnet-lite0", "--fast", "--n", "3", "--baseline-n", "2",
                     "--json", str(out)]) == 0
    assert "agreement %" in capsys.readouterr().out
    rows = json.loads(out.read_text())["links"]
    assert [r["link"] for r in rows] == ["1mbit/40ms", "50mbit/10ms"]
    for r in rows:
        assert r["metric"] == "agreement" and r["errors"] == 0 and r["edge_only"]["n"] == 2
        assert r["cloud_only"]["plan"].startswith("cloud-only")
