"""`planner run --objective energy`: each request planned for energy, its estimated energy in --results rows."""

import json

import pytest

from planner.cli import main
from planner.energy import EnergyModel
from planner.errors import SolveError
from planner.objectives import Goal, as_goal
from planner.profile.power import ASSUMED

PROFILES = ["--edge", "profiles/vgg-fmnist_edge_epyc-1t.json", "--cloud-profile", "profiles/vgg-fmnist_cloud_epyc-2t.json"]


def test_as_goal():
    assert as_goal("mean") is None and as_goal(None) is None and as_goal(Goal()) is None
    assert as_goal("energy").energy == EnergyModel("lte")
    limited = Goal(max_latency_ms=50.0)
    assert as_goal(limited) is limited
    with pytest.raises(SolveError, match="cost needs its price"):
        as_goal("cost")


def test_run_for_energy_reports_energy_per_request(tmp_path, capsys):
    from planner import zoo

    if not zoo.weights_path("vgg-fmnist").exists():
        pytest.skip("vgg-fmnist weights are not built")
    pytest.importorskip("planner.data").load_arrays("test")
    rows = tmp_path / "r.jsonl"
    rc = main(["run", "--model", "vgg-fmnist", "--cloud", "local", "--bandwidth", "20mbit", "--rtt", "2ms", "--n", "6",
               "--objective", "energy", "--link", "wifi", "--explore", "0", "--results", str(rows), "--json",
               *PROFILES])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = json.loads(captured.out)
    results = [json.loads(line) for line in rows.read_text().splitlines()]
    assert len(results) == 6 and all(r["energy_mj"] > 0 for r in results)
    assert out["energy_mj_median"] > 0 and all("energy_mj_median" in p for p in out["plans"])
    for r in results:
        if r["kind"] == "edge-only" and not r["fallback"]:  # compute only, at the assumed active power
            assert r["energy_mj"] == pytest.approx(ASSUMED.active_w * (r["edge_ms"] + r["encode_ms"]), rel=1e-3)
    assert main(["run", "--model", "vgg-fmnist", "--bandwidth", "1mbit", "--objective", "energy", *PROFILES]) == 2
    assert "--link" in capsys.readouterr().err
