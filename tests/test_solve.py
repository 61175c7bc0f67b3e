import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.errors import SolveError
from planner.link import ConstantLink, TraceLink
from planner.profile.synthetic import synthetic_pair, synthetic_profile
from planner.solve import CandidateSet, breakpoints, solve, solve_trace


def brute_force(edge, cloud, bw_bps, rtt_ms, max_loss, slowdown=1.0):
    """Every candidate's (label, latency, loss) straight from the profiles, written independently of solve.py."""
    backbone = edge.backbone_accuracy
    reply_ms = edge.reply_bytes * 8000.0 / bw_bps

    def wire(nbytes):
        return nbytes * 8000.0 / bw_bps + rtt_ms + reply_ms

    out = [("cloud-only", slowdown * edge.input.encode_ms.median + wire(edge.input.compressed_bytes)
            + cloud.input.decode_ms.median + cloud.whole_model_ms.median, 0.0),
           ("edge-only", slowdown * edge.whole_model_ms.median, 0.0)]
    for ce, cc in zip(edge.cuts, cloud.cuts, strict=True):
        for dtype, r in ce.raw.items():
            t = (slowdown * (ce.head_ms.median + r.serialize_ms.median) + wire(r.bytes)
                 + cc.raw[dtype].deserialize_ms.median + cc.tail_ms.median)
            out.append((f"{ce.id} raw {dtype}", t, 0.0 if dtype == "float32" else backbone - r.accuracy))
        for b, e in ce.bits.items():
            t = (slowdown * (ce.head_ms.median + e.encode_ms.median) + wire(e.bytes_mean)
                 + cc.bits[b].decode_ms.median + cc.tail_ms.median)
            out.append((f"{ce.id} @ {b} bits", t, backbone - e.accuracy))
    feasible = [c for c in out if c[2] <= max_loss + 1e-9]
    return out, feasible


pairs = st.builds(
    lambda seed, n, bits, e, c, f16: synthetic_pair(seed, n_cuts=n, bits=bits, edge_ms=e, cloud_ms=c, float16=f16),
    st.integers(0, 10_000), st.integers(1, 10), st.sets(st.integers(1, 8), min_size=1).map(lambda s: tuple(sorted(s))),
    st.floats(0.5, 500.0), st.floats(0.05, 20.0), st.booleans())


@settings(max_examples=100, deadline=None)
@given(pair=pairs, bw=st.floats(1e3, 1e10), rtt=st.floats(0.0, 200.0), max_loss=st.floats(0.0, 5.0),
       slowdown=st.floats(0.1, 100.0))
def test_solve_matches_brute_force(pair, bw, rtt, max_loss, slowdown):
    edge, cloud = pair
    plan = solve(edge, cloud, ConstantLink(bw, rtt), max_loss=max_loss, edge_slowdown=slowdown)
    everything, feasible = brute_force(edge, cloud, bw, rtt, max_loss, slowdown)
    best = min(t for _, t, _ in feasible)
    chosen = plan.chosen
    assert chosen.feasible and chosen.accuracy_loss <= max_loss + 1e-9
    assert plan.predicted_ms == pytest.approx(best, rel=1e-9)
    assert chosen.edge_ms + chosen.transfer_ms + chosen.cloud_ms == pytest.approx(chosen.predicted_ms)
    by_label = {label: (t, loss) for label, t, loss in everything}
    assert len(plan.candidates) == len(everything)
    for c in plan.candidates:
        assert c.predicted_ms == pytest.approx(by_label[c.label][0], rel=1e-9)
        assert c.accuracy_loss == pytest.approx(by_label[c.label][1], abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(pair=pairs, rtt=st.floats(0.0, 100.0), max_loss=st.floats(0.0, 3.0))
def test_breakpoints_agree_with_dense_sampling(pair, rtt, max_loss):
    edge, cloud = pair
    low, high = 1e3, 1e10
    points = breakpoints(edge, cloud, rtt=rtt, low=low, high=high, max_loss=max_loss)
    cs = CandidateSet(edge, cloud)
    edges = [low] + [p.bandwidth_bps for p in points] + [high]
    assert edges == sorted(edges) and all(a < b for a, b in zip(edges, edges[1:], strict=False))
    for p in points:  # both sides tie at the breakpoint and differ in choice
        assert p.below.predicted_ms == pytest.approx(p.above.predicted_ms, rel=1e-9)
        assert p.below.label != p.above.label
    for a, b in zip(points, points[1:], strict=False):
        assert a.above.label == b.below.label
    # the envelope's choice in each region is the brute-force optimum at dense samples inside it, and the
    # sampled optimum changes only across a breakpoint
    cuts_at = [p.bandwidth_bps for p in points]
    regions = [points[0].below.label if points else None] + [p.above.label for p in points]
    samples = np.geomspace(low, high, 150)
    chosen = []
    for bw in samples:
        plan = cs.solve(ConstantLink(bw, rtt), max_loss=max_loss)
        k = int(np.searchsorted(cuts_at, bw))
        region = regions[k] or plan.chosen.label
        assert next(c.predicted_ms for c in plan.candidates if c.label == region) == pytest.approx(
            plan.predicted_ms, rel=1e-9, abs=1e-9)
        chosen.append(plan.chosen.label)
    for i in range(len(samples) - 1):
        if chosen[i] != chosen[i + 1]:
            assert any(samples[i] <= b <= samples[i + 1] for b in cuts_at)


def test_extreme_bandwidths_pick_the_ends():
    edge, cloud = synthetic_pair(3, edge_ms=80.0, cloud_ms=0.5)
    slow = solve(edge, cloud, ConstantLink("100bit", "20ms"))
    assert slow.kind == "edge-only" and slow.breakdown["transfer_ms"] == 0.0
    fast = solve(edge, cloud, ConstantLink("100gbit", "1ms"))
    assert fast.kind == "cloud-only" and fast.cut == "input"
    # with a fast edge and no way to win by sending, a tiny link still keeps everything local
    quick_edge, _ = synthetic_pair(3, edge_ms=0.5, cloud_ms=0.5)
    assert solve(quick_edge, cloud, ConstantLink("10gbit", "50ms")).kind == "edge-only"
    # an edge that cannot run the whole model (edge-only out of reach): the smallest payload wins on a slow link
    no_whole = replace(edge, whole_model_ms=replace(edge.whole_model_ms, median=1e15))
    for budget in (None, 1.0, 0.0):
        plan = solve(no_whole, cloud, ConstantLink("1bit", "20ms"), max_loss=budget)
        allowed = [c for c in plan.candidates if c.feasible and c.kind != "edge-only"]
        assert plan.chosen.nbytes == min(c.nbytes for c in allowed)


def test_budget_fallback_and_no_budget():
    edge, cloud = synthetic_pair(5)
    plan = solve(edge, cloud, ConstantLink("200kbit", "20ms"), max_loss=-5.0)
    assert plan.fallback_reason and "fell back to the lossless candidates" in plan.fallback_reason
    assert plan.accuracy_loss == 0.0 and plan.kind in ("cloud-only", "edge-only", "raw")
    assert all(c.feasible == (c.accuracy_loss == 0.0 and c.dtype != "float16") for c in plan.candidates)
    free = solve(edge, cloud, ConstantLink("200kbit", "20ms"), max_loss=None)
    assert free.fallback_reason is None and all(c.feasible for c in free.candidates)
    assert free.predicted_ms <= solve(edge, cloud, ConstantLink("200kbit", "20ms")).predicted_ms
    with pytest.raises(SolveError, match="finite number"):
        solve(edge, cloud, ConstantLink("1mbit"), max_loss=math.nan)


def test_unknown_accuracy_needs_an_assumption():
    edge, cloud = synthetic_pair(2, n_cuts=3, bits=(2, 4), accuracy=False)
    with pytest.raises(SolveError, match=r"accuracy loss of \d+ candidates .*backbone accuracy is unknown.*assume_loss"):
        solve(edge, cloud, ConstantLink("1mbit"))
    plan = solve(edge, cloud, ConstantLink("300kbit", "20ms"), assume_loss={2: 3.0, 4: 0.5, 16: 0.0})
    losses = {(c.bits, c.dtype): c.accuracy_loss for c in plan.candidates if c.kind != "cloud-only"}
    assert losses[(2, None)] == 3.0 and losses[(4, None)] == 0.5 and losses[(None, "float16")] == 0.0
    assert plan.accuracy_loss <= 1.0
    with pytest.raises(SolveError, match="raw float16"):
        solve(edge, cloud, ConstantLink("1mbit"), assume_loss={2: 3.0, 4: 0.5})


def test_missing_timings_and_mismatched_profiles():
    edge, cloud = synthetic_pair(4, n_cuts=3)
    both = synthetic_profile("both", seed=4, n_cuts=3)
    holes = replace(both, cuts=(replace(both.cuts[0], head_ms=None), *both.cuts[1:]))
    with pytest.raises(SolveError, match=r"edge profile .*: cut.cut0.head_ms was not measured"):
        solve(holes, cloud, ConstantLink("1mbit"))
    assert solve(both, both, ConstantLink("1mbit")).predicted_ms > 0
    with pytest.raises(SolveError, match="different models"):
        solve(edge, synthetic_profile("cloud", seed=4, n_cuts=3, model="other"), ConstantLink("1mbit"))


def test_edge_slowdown_equals_a_scaled_profile():
    edge, cloud = synthetic_pair(6, edge_ms=5.0)
    link = ConstantLink("400kbit", "30ms")
    a = solve(edge, cloud, link, edge_slowdown=8.0)
    b = solve(edge.scaled(compute=8.0), cloud, link)
    assert a.predicted_ms == pytest.approx(b.predicted_ms) and a.chosen.label == b.chosen.label
    assert [c.predicted_ms for c in a.candidates] == pytest.approx([c.predicted_ms for c in b.candidates])


def test_plan_contract_table_and_pareto():
    edge, cloud = synthetic_pair(8)
    plan = solve(edge, cloud, ConstantLink("300kbit", "20ms"), max_loss=0.5)
    d = json.loads(json.dumps(plan.to_dict()))
    assert {"cut", "bits", "predicted_ms", "accuracy_loss", "breakdown", "candidates"} <= set(d)
    assert set(d["breakdown"]) >= {"edge_ms", "transfer_ms", "cloud_ms"}
    assert sum(d["breakdown"][k] for k in ("edge_ms", "transfer_ms", "cloud_ms")) == pytest.approx(d["predicted_ms"])
    assert all({"cut", "bits", "predicted_ms", "accuracy_loss", "feasible"} <= set(c) for c in d["candidates"])
    kinds = {c["kind"]: c for c in d["candidates"]}
    assert kinds["cloud-only"]["cut"] == "input" and kinds["edge-only"]["cut"] == "output"
    assert kinds["raw"]["bits"] is None
    table = plan.table
    assert len(table) == len(plan.candidates) and table["chosen"].sum() == 1
    assert table.loc[table["chosen"], "predicted_ms"].item() == pytest.approx(plan.predicted_ms)
    front = plan.pareto
    assert [c.predicted_ms for c in front] == sorted(c.predicted_ms for c in front)
    for c in plan.candidates:  # nothing on the front is dominated; everything off it is
        dominated = any(o.predicted_ms <= c.predicted_ms and o.accuracy_loss <= c.accuracy_loss and
                        (o.predicted_ms, o.accuracy_loss) != (c.predicted_ms, c.accuracy_loss) for o in plan.candidates)
        assert (c in front) == (not dominated), c.label


def test_trace_plans():
    edge, cloud = synthetic_pair(1)
    steady = TraceLink.load("steady", rtt="20ms")  # 0.5 Mbit/s throughout
    on_trace = solve_trace(edge, cloud, steady, objective="mean")
    constant = solve(edge, cloud, ConstantLink("500kbit", "20ms"))
    assert on_trace.chosen.label == constant.chosen.label
    assert on_trace.predicted_ms == pytest.approx(constant.predicted_ms, rel=1e-9)
    outage = TraceLink.load("outage", rtt="20ms")
    mean, p95 = (solve_trace(edge, cloud, outage, objective=o) for o in ("mean", "p95"))
    assert p95.table["p95_ms"].min() == pytest.approx(p95.predicted_ms)
    assert mean.table["mean_ms"].min() == pytest.approx(mean.predicted_ms)
    assert p95.predicted_ms >= mean.predicted_ms
    # one request at the start of an outage waits for the link to come back, unless it stays local
    during = solve(edge, cloud, outage, start_ms=17_000.0)
    assert during.kind == "edge-only"
    with pytest.raises(SolveError, match="needs a trace link"):
        solve_trace(edge, cloud, ConstantLink("1mbit"))


# -- CLI ------------------------------------------------------------------------------------------------
@pytest.fixture
def profile_files(tmp_path):
    edge, cloud = synthetic_pair(11, edge_ms=60.0)
    return str(edge.save(tmp_path / "edge.json")), str(cloud.save(tmp_path / "cloud.json")), tmp_path


def test_cli_plan_json_contract(profile_files, capsys):
    edge, cloud, _ = profile_files
    assert main(["plan", "--edge", edge, "--cloud", cloud, "--bandwidth", "300kbit", "--rtt", "20ms",
                 "--max-loss", "0.5", "--json", "--breakpoints", "1kbit:1gbit"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"cut", "bits", "predicted_ms", "accuracy_loss", "breakdown", "candidates", "kind", "link"} <= set(d)
    assert d["link"] == {"kind": "constant", "bandwidth_bps": 300e3, "rtt_ms": 20.0}
    assert d["accuracy_loss"] <= 0.5 and d["breakpoints"]
    assert d["predicted_ms"] == min(c["predicted_ms"] for c in d["candidates"] if c["feasible"])


def test_cli_plan_table_and_trace(profile_files, capsys):
    edge, cloud, _ = profile_files
    assert main(["plan", "--edge", edge, "--cloud", cloud, "--bandwidth", "300kbit", "--top", "3",
                 "--edge-slowdown", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan: ") and "edge slowdown 2" in out
    starred = [line for line in out.splitlines() if line.startswith("*")]
    assert len(starred) == 1 and "cloud-only" in out and "edge-only" in out
    assert main(["plan", "--edge", edge, "--cloud", cloud, "--trace", "outage", "--objective", "p95", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["objective"] == "p95" and d["link"]["trace"] == "outage.tsv"


def test_cli_plan_errors(profile_files, capsys):
    edge, cloud, tmp = profile_files
    other = synthetic_profile("cloud", seed=11, autoencoder="other-ae").save(tmp / "other.json")
    assert main(["plan", "--edge", edge, "--cloud", str(other), "--bandwidth", "1mbit"]) == 2
    err = capsys.readouterr().err
    assert "different autoencoders: 'synthetic-ae'" in err and "'other-ae'" in err
    assert main(["plan", "--edge", edge, "--cloud", cloud, "--bandwidth", "1 furlong"]) == 2
    assert "unknown bandwidth unit" in capsys.readouterr().err
    assert main(["plan", "--edge", str(tmp / "nope.json"), "--cloud", cloud, "--bandwidth", "1mbit"]) == 2
    assert "no such file" in capsys.readouterr().err
