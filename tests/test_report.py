"""The what-if report: data functions agree with the solver, figures render, `planner report` writes its files."""

import math
import subprocess
import sys

import numpy as np
import pytest
from report_profiles import write_profiles

import planner
from planner import report
from planner.cli import main
from planner.errors import PlannerError, ProfileError
from planner.profile.schema import Profile
from planner.solve import prepare

FAST_MAP = {"points_per_decade": 3, "points_per_octave": 1}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_profiles(tmp_path_factory.mktemp("profiles"))


@pytest.fixture(scope="module")
def p(files):
    return {k: Profile.load(v) for k, v in files.items()}


def test_find_profiles_by_naming_rule(files, monkeypatch, tmp_path):
    d = [files["edge"].parent]
    assert report.find_profiles("vgg-fmnist", dirs=d) == (files["edge"], files["cloud"])
    assert report.find_profiles("vgg-fmnist", quota=0.125, dirs=d) == (files["edge_quota"], files["cloud"])
    assert report.find_profiles("vgg-fmnist", quota=0.125, autoencoder="independent", dirs=d) == (
        files["edge_independent"], files["cloud_independent"])
    more = files["cloud"].with_name("vgg-fmnist_cloud_synthetic-1t.json")  # fewer threads: not preferred
    more.write_text(files["cloud"].read_text())
    try:
        assert report.find_profiles("vgg-fmnist", dirs=d)[1] == files["cloud"]
    finally:
        more.unlink()
    with pytest.raises(ProfileError, match=r"no edge profile .*independent.*_independent\.json"):
        report.find_profiles("vgg-fmnist", autoencoder="independent", dirs=d)  # independent only under a quota
    with pytest.raises(ProfileError, match=r"no edge profile for model 'nope'"):
        report.find_profiles("nope", dirs=d)
    monkeypatch.chdir(tmp_path)  # no ./profiles here: the variable's folder comes before the shipped examples
    monkeypatch.setenv(report.PROFILES_ENV, str(d[0]))
    edge, cloud = report.load_pair("vgg-fmnist", quota=0.125)
    assert edge.device["threads"] == 1 and edge.whole_model_ms.median == p_whole(files["edge_quota"])


def p_whole(path) -> float:
    return Profile.load(path).whole_model_ms.median


@pytest.mark.parametrize("bandwidth", ["10kbit", "0.3mbit", "1gbit"])
def test_best_per_cut_agrees_with_the_solver(p, bandwidth):
    edge, cloud = p["edge_quota"], p["cloud"]
    link = planner.ConstantLink(bandwidth, "20ms")
    df = report.best_per_cut(edge, cloud, link)
    assert list(df["cut"]) == ["input", *(c.id for c in edge.cuts), "output"]
    parts = df["edge_ms"] + df["rtt_ms"] + df["wire_ms"] + df["cloud_ms"]
    assert np.allclose(parts, df["predicted_ms"])
    plan = planner.plan(edge, cloud, link)
    assert df["optimal"].sum() == 1
    best = df[df["optimal"]].iloc[0]
    assert best["label"] == plan.chosen.label and math.isclose(best["predicted_ms"], plan.predicted_ms)
    inner = df.iloc[1:-1]
    assert (inner["predicted_ms"] <= inner["raw_float32_ms"] + 1e-9).all()  # raw float32 is one of the options
    assert (df["accuracy_loss"] <= 1.0 + 1e-9).all()


def test_best_per_cut_shows_both_ends(p):
    assert report.best_per_cut(p["edge"], p["cloud"], "10kbit").query("optimal")["cut"].item() == "output"
    assert report.best_per_cut(p["edge_quota"], p["cloud"], "1gbit").query("optimal")["cut"].item() == "input"


def test_choice_map_is_the_solvers_answer_and_has_both_ends(p):
    edge, cloud = p["edge"], p["cloud"]
    cmap = report.choice_map(edge, cloud, rtt="20ms", **FAST_MAP)
    assert cmap.index.shape == (cmap.slowdowns.size, cmap.bandwidths_bps.size) == (7, 16)
    assert math.isclose(cmap.bandwidths_bps[0], 1e4) and math.isclose(cmap.bandwidths_bps[-1], 1e9)
    assert cmap.slowdowns[0] == 1 and math.isclose(cmap.slowdowns[-1], 64)
    rng = np.random.default_rng(0)
    for s, b in zip(rng.integers(0, 7, 12), rng.integers(0, 16, 12), strict=True):
        plan = planner.plan(edge, cloud, planner.ConstantLink(cmap.bandwidths_bps[b], "20ms"),
                            edge_slowdown=float(cmap.slowdowns[s]))
        assert cmap.index[s, b] == plan.index and math.isclose(cmap.predicted_ms[s, b], plan.predicted_ms)
    shares = cmap.kind_shares()
    assert math.isclose(sum(shares.values()), 1.0)
    assert shares["cloud-only"] > 0 and shares["edge-only"] > 0  # fast link + slow edge, slow link + fast edge
    assert math.isclose(cmap.shares()["share"].sum(), 1.0)
    with pytest.raises(PlannerError, match="low < high"):
        report.choice_map(edge, cloud, bandwidth=("1mbit", "1kbit"))


def test_pareto_fronts_are_the_non_dominated_points(p):
    link = planner.ConstantLink("0.3mbit", "20ms")
    df = report.pareto_frame((p["edge_quota"], p["cloud"]), link,
                             independent=(p["edge_independent"], p["cloud_independent"]))
    assert set(df["family"]) == {"shared AE", "independent AEs", "raw features", "trivial"}
    assert set(df[df["family"] == "trivial"]["kind"]) == {"cloud-only", "edge-only"}
    assert set(df[df["family"] == "raw features"]["kind"]) == {"raw"}
    for _, g in df.groupby("family"):
        lat, loss = g["predicted_ms"].to_numpy(), g["accuracy_loss"].to_numpy()
        dominated = [((lat <= lat[i]) & (loss <= loss[i]) & ((lat < lat[i]) | (loss < loss[i]))).any()
                     for i in range(len(g))]
        assert (g["on_front"].to_numpy() == ~np.array(dominated)).all()
    trivial = df[df["family"] == "trivial"]
    for _, r in df[df["family"] != "trivial"].iterrows():
        beaten = ((trivial["predicted_ms"] <= r["predicted_ms"]) & (trivial["accuracy_loss"] <= r["accuracy_loss"]))
        assert r["beaten_by_trivial"] == beaten.any()
    without = report.pareto_frame((p["edge_quota"], p["cloud"]), link)
    assert "independent AEs" not in set(without["family"])


def test_trace_replay_policies(p):
    edge, cloud = p["edge_quota"], p["cloud"]
    replay = report.replay_trace(edge, cloud, "step_drop", rtt="20ms", interval="1s")
    n = replay.times_s.size
    assert n == 60 and set(replay.latency_ms) == set(replay.choice)
    oracle = replay.latency_ms["oracle (per request)"]
    for name, lat in replay.latency_ms.items():
        assert lat.shape == (n,) and (oracle <= lat + 1e-9).all(), name
    link = planner.TraceLink.load("step_drop", rtt="20ms")
    cs = prepare(edge, cloud)
    for k in (0, 29, 45):
        plan = cs.solve(link, start_ms=replay.times_s[k] * 1e3)
        assert math.isclose(oracle[k], plan.predicted_ms)
    robust = replay.latency_ms["trace-robust (fixed)"].mean()
    for name in ("cloud-only", "edge-only", "planned for mean bw (fixed)"):
        assert robust <= replay.latency_ms[name].mean() + 1e-9
    feasible, _ = cs.feasible(1.0)
    assert feasible[replay.choice["adaptive (EWMA)"]].all()
    assert {cs.specs[i].kind for i in replay.choice["oracle (per request)"]} >= {"cloud-only", "edge-only"}
    s = replay.summary()
    assert list(s["policy"]) == list(replay.latency_ms) and (s["p95_ms"] <= s["max_ms"] + 1e-9).all()
    assert s.set_index("policy").loc["edge-only", "changes"] == 0


def test_breakpoints_frame_intervals(p):
    edge, cloud = p["edge_quota"], p["cloud"]
    df = report.breakpoints_frame(edge, cloud, rtt="20ms", low="10kbit", high="1gbit")
    assert len(df) >= 3 and df["from_mbps"].iloc[0] == 0.01 and df["to_mbps"].iloc[-1] == 1000
    assert np.allclose(df["from_mbps"].iloc[1:].to_numpy(), df["to_mbps"].iloc[:-1].to_numpy())
    assert np.allclose(df["ms_at_from"].iloc[1:].to_numpy(), df["ms_at_to"].iloc[:-1].to_numpy())  # continuous
    assert df["choice"].iloc[0] == "edge-only" and df["choice"].iloc[-1] == "cloud-only"
    for _, r in df.iterrows():
        mid = math.sqrt(r["from_mbps"] * r["to_mbps"]) * 1e6
        assert planner.plan(edge, cloud, planner.ConstantLink(mid, "20ms")).chosen.label == r["choice"]
    one = report.breakpoints_frame(edge, cloud, low="10kbit", high="20kbit")
    assert len(one) == 1 and one["choice"].item() == "edge-only"


def test_figures_render(p, tmp_path):
    from matplotlib.figure import Figure

    edge, cloud = p["edge_quota"], p["cloud"]
    figs = {
        "breakdown": (report.breakdown_figure(edge, cloud, ["0.1mbit", "100mbit"]), 2),
        "map": (report.choice_map_figure(report.choice_map(p["edge"], cloud, **FAST_MAP), marks={"quota": 8.0}), 1),
        "pareto": (report.pareto_figure((edge, cloud), ["1mbit"], independent=(p["edge_independent"],
                                                                               p["cloud_independent"])), 1),
        "trace": (report.trace_figure(report.replay_trace(edge, cloud, "step_drop", interval="2s")), 3),
    }
    for name, (fig, n_axes) in figs.items():
        assert isinstance(fig, Figure) and len(fig.axes) == n_axes, name
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=40)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command(files, tmp_path, capsys):
    out = tmp_path / "rep"
    args = ["report", "--edge", str(files["edge_quota"]), "--cloud", str(files["cloud"]), "--out", str(out),
            "--bandwidth", "0.1mbit,100mbit", "--trace", "step_drop", "--compare-edge", str(files["edge"]),
            "--independent-edge", str(files["edge_independent"]), "--independent-cloud",
            str(files["cloud_independent"])]
    assert main(args) == 0
    assert {f.name for f in out.iterdir()} == {"breakdown.png", "choice_map.png", "pareto.png", "trace.png",
                                               "energy.png", "pareto_energy.png", "summary.md"}
    text = (out / "summary.md").read_text()
    for heading in ("## 1. The plan at each bandwidth", "## 2. Where each choice wins", "## 3. Latency vs accuracy",
                    "## 4. Replay of the trace step_drop", "## 5. Breakpoints", "## 6. Edge energy per request"):
        assert heading in text
    plan = planner.plan(Profile.load(files["edge_quota"]), Profile.load(files["cloud"]),
                        planner.ConstantLink("0.1mbit", "20ms"))
    assert f"| 100 kbit/s | {plan.chosen.label} |" in text
    assert "independent AEs" in text and "0.125x" in text  # the 1-core edge is 1/8 of the quota one's time
    assert "wrote" in capsys.readouterr().out

    assert main([*args[:6], str(tmp_path / "b"), "--trace", "none", "--link", "none"]) == 0
    assert not (tmp_path / "b" / "trace.png").exists() and "## 4." not in (tmp_path / "b" / "summary.md").read_text()
    assert not (tmp_path / "b" / "energy.png").exists() and "## 6." not in (tmp_path / "b" / "summary.md").read_text()
    assert main([*args[:6], str(tmp_path / "d"), "--link", "5g"]) == 2
    assert main([*args[:6], str(tmp_path / "c"), "--independent-edge", str(files["edge_independent"])]) == 2
    assert "--independent-cloud" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main([*args[:6], str(tmp_path / "file")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_report_never_imports_torch(files, tmp_path):
    code = (f"import sys; from planner.profile.schema import Profile; from planner.report import write_report; "
            f"write_report(Profile.load({str(files['edge_quota'])!r}), Profile.load({str(files['cloud'])!r}), "
            f"{str(tmp_path)!r}, trace='step_drop'); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
