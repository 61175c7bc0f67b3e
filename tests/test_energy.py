"""Energy and cost objectives: every figure against a hand calculation from the profiles and the power constants."""

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.energy import RADIOS, CloudPrice, EnergyModel, parse_radio
from planner.errors import ProfileError, SolveError
from planner.link import ConstantLink, TraceLink
from planner.objectives import Goal
from planner.profile.power import ASSUMED, EdgePower, Rapl, parse_power, profile_power
from planner.profile.schema import Profile
from planner.profile.synthetic import synthetic_pair
from planner.solve import CandidateSet

POWER = EdgePower(3.0, 0.5, "declared")


def rows_by_hand(edge, cloud, bw_bps, rtt_ms, radio, power, tail=False):
    """{label: (latency ms, energy mJ, (compute, radio, idle))}, written from the profiles without solve.py."""
    reply = edge.reply_bytes
    out = {}

    def add(label, edge_ms, nbytes, cloud_ms):
        if nbytes is None:
            out[label] = (edge_ms, power.active_w * edge_ms, (power.active_w * edge_ms, 0.0, 0.0))
            return
        up_s, down_s = nbytes * 8 / bw_bps, reply * 8 / bw_bps  # seconds on the wire
        latency = edge_ms + up_s * 1e3 + rtt_ms + down_s * 1e3 + cloud_ms
        # Huang et al.: P = alpha * throughput (Mbit/s) + beta while transferring, in mW; x seconds -> mJ
        e_radio = ((radio.alpha_up * bw_bps / 1e6 + radio.beta) * up_s
                   + (radio.alpha_down * bw_bps / 1e6 + radio.beta) * down_s)
        if tail:
            e_radio += radio.tail_mw * (min(rtt_ms + cloud_ms, radio.tail_ms) + radio.tail_ms) / 1e3
        e_compute = power.active_w * edge_ms  # W x ms = mJ
        e_idle = power.idle_w * (latency - edge_ms)
        out[label] = (latency, e_compute + e_radio + e_idle, (e_compute, e_radio, e_idle))

    add("cloud-only", edge.input.encode_ms.median, edge.input.compressed_bytes,
        cloud.input.decode_ms.median + cloud.whole_model_ms.median)
    add("edge-only", edge.whole_model_ms.median, None, 0.0)
    for ce, cc in zip(edge.cuts, cloud.cuts, strict=True):
        for dtype, r in ce.raw.items():
            add(f"{ce.id} raw {dtype}", ce.head_ms.median + r.serialize_ms.median, r.bytes,
                cc.raw[dtype].deserialize_ms.median + cc.tail_ms.median)
        for b, e in ce.bits.items():
            add(f"{ce.id} @ {b} bits", ce.head_ms.median + e.encode_ms.median, e.bytes_mean,
                cc.bits[b].decode_ms.median + cc.tail_ms.median)
    return out


@pytest.mark.parametrize("radio_name", sorted(RADIOS))
@pytest.mark.parametrize("tail", [False, True])
def test_energy_matches_hand_calculation(radio_name, tail):
    edge, cloud = synthetic_pair(4, n_cuts=4, bits=(2, 4, 8), edge_ms=60.0, cloud_ms=2.0)
    radio = RADIOS[radio_name]
    goal = Goal("energy", energy=EnergyModel(radio_name, tail=tail, power=POWER))
    plan = CandidateSet(edge, cloud).solve(ConstantLink("1mbit", "40ms"), max_loss=None, goal=goal)
    hand = rows_by_hand(edge, cloud, 1e6, 40.0, radio, POWER, tail)
    assert len(plan.candidates) == len(hand)
    for c in plan.candidates:
        latency, energy, parts = hand[c.label]
        assert c.predicted_ms == pytest.approx(latency, rel=1e-9)
        assert c.energy_mj == pytest.approx(energy, rel=0.01)
        assert c.energy_mj == pytest.approx(energy, rel=1e-9)  # the target is 1 %; the model is exact
        for k, v in zip(("compute", "radio", "idle"), parts, strict=True):
            assert c.energy_parts[k] == pytest.approx(v, rel=1e-9, abs=1e-12)
    best = min(hand, key=lambda label: hand[label][1])
    assert plan.chosen.label == best


def test_a_round_number_example():
    """One candidate worked out on paper: 1000 B up, 48 B back at 1 Mbit/s on LTE, 40 ms RTT."""
    edge, cloud = synthetic_pair(0, n_cuts=1, bits=(4,))
    plan = CandidateSet(edge, cloud).solve(ConstantLink("1mbit", "40ms"), max_loss=None,
                                           goal=Goal("energy", energy=EnergyModel("lte", power=POWER)))
    c = plan.candidate("cloud-only")
    up_ms = edge.input.compressed_bytes * 8 / 1e3  # bytes * 8 bit / 1 Mbit/s, in ms
    # uplink: (438.39 mW/Mbps * 1 Mbps + 1288.04 mW) * up_ms; reply 48 B = 0.384 ms at (51.97 + 1288.04) mW
    radio = (438.39 + 1288.04) * up_ms / 1e3 + (51.97 + 1288.04) * 0.384 / 1e3
    assert c.energy_parts["radio"] == pytest.approx(radio, rel=1e-9)
    assert c.energy_parts["idle"] == pytest.approx(0.5 * (c.predicted_ms - c.edge_ms), rel=1e-9)
    assert plan.candidate("edge-only").energy_parts == {"compute": pytest.approx(3.0 * edge.whole_model_ms.median),
                                                        "radio": 0.0, "idle": 0.0}


pairs = st.builds(lambda seed, e, c: synthetic_pair(seed, n_cuts=5, bits=(2, 4, 8), edge_ms=e, cloud_ms=c),
                  st.integers(0, 1000), st.floats(1.0, 500.0), st.floats(0.1, 20.0))


@settings(max_examples=40, deadline=None)
@given(pair=pairs, bw=st.floats(1e4, 1e9), rtt=st.floats(0.0, 200.0), radio=st.sampled_from(sorted(RADIOS)),
       limit=st.one_of(st.none(), st.floats(5.0, 2000.0)))
def test_energy_choice_is_exact_and_respects_the_latency_limit(pair, bw, rtt, radio, limit):
    edge, cloud = pair
    goal = Goal("energy", max_latency_ms=limit, energy=EnergyModel(radio, power=POWER))
    plan = CandidateSet(edge, cloud).solve(ConstantLink(bw, rtt), max_loss=1.0, goal=goal)
    within = [c for c in plan.candidates if c.accuracy_loss <= 1.0 + 1e-9]
    meets = [c for c in within if limit is None or c.predicted_ms <= limit]
    if meets:
        assert plan.predicted_ms <= (limit or np.inf) * (1 + 1e-12)
        assert plan.chosen.energy_mj == pytest.approx(min(c.energy_mj for c in meets), rel=1e-12)
        if limit is None:  # never worse in energy than either end
            ends = [plan.candidate("edge-only").energy_mj, plan.candidate("cloud-only").energy_mj]
            assert plan.chosen.energy_mj <= min(ends) + 1e-9
    else:
        assert "no candidate meets the latency limit" in plan.fallback_reason
        assert plan.predicted_ms == pytest.approx(min(c.predicted_ms for c in within), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(pair=pairs, rtt=st.floats(0.0, 100.0), objective=st.sampled_from(["energy", "cost", "mean"]),
       limit=st.one_of(st.none(), st.floats(5.0, 3000.0)), tail=st.booleans())
def test_breakpoints_under_every_objective_agree_with_dense_sampling(pair, rtt, objective, limit, tail):
    edge, cloud = pair
    goal = Goal(objective, max_latency_ms=limit, energy=EnergyModel("3g", tail=tail, power=POWER),
                price=CloudPrice(2.0, 0.1))
    cs = CandidateSet(edge, cloud)
    low, high = 1e4, 1e9
    points = cs.breakpoints(rtt=rtt, low=low, high=high, max_loss=1.0, goal=goal)
    edges = [low] + [p.bandwidth_bps for p in points] + [high]
    assert all(a < b for a, b in zip(edges, edges[1:], strict=False))
    regions = [points[0].below.label if points else None] + [p.above.label for p in points]
    for a, b in zip(points, points[1:], strict=False):
        assert a.above.label == b.below.label
    key = {"energy": "energy_mj", "cost": "cost", "mean": "predicted_ms"}[objective]
    for bw in np.geomspace(low, high, 120)[1:-1]:
        if any(abs(bw / p.bandwidth_bps - 1) < 1e-6 for p in points):
            continue
        plan = cs.solve(ConstantLink(bw, rtt), max_loss=1.0, goal=goal)
        region = regions[int(np.searchsorted([p.bandwidth_bps for p in points], bw))] or plan.chosen.label
        mine = plan.candidate(next(c.spec for c in plan.candidates if c.label == region))
        if plan.fallback_reason and "latency limit" in plan.fallback_reason:
            assert mine.predicted_ms == pytest.approx(plan.predicted_ms, rel=1e-9)
        else:
            assert limit is None or mine.predicted_ms <= limit * (1 + 1e-9)
            assert getattr(mine, key) == pytest.approx(getattr(plan.chosen, key), rel=1e-9, abs=1e-15)


def test_trace_replays_energy_per_request():
    edge, cloud = synthetic_pair(7, n_cuts=3, bits=(2, 8), edge_ms=40.0, cloud_ms=1.0)
    link = TraceLink.from_rates([0, 1, 2, 3, 4], [0.5, 2.0, 0.0, 1.0, 0.3], rtt="30ms", name="t")
    goal = Goal("energy", latency_stat="p95", energy=EnergyModel("wifi", power=POWER))
    cs = CandidateSet(edge, cloud)
    starts = (np.arange(50) + 0.5) / 50 * link.period_ms
    plan = cs.solve_trace(link, max_loss=None, starts_ms=starts, goal=goal)
    r = RADIOS["wifi"]
    for i in (cs.index("cloud-only"), cs.index("edge-only"), 3):
        c = plan.candidate(i)
        per_request = []
        for t0 in starts:  # replay one request: uplink after the edge part, reply after the cloud part
            if not cs.remote[i]:
                per_request.append(POWER.active_w * cs.edge_ms[i])
                continue
            t_edge = t0 + cs.edge_ms[i]
            up = link.transfer_ms(cs.payload_bytes[i], t_edge)
            down = link.transfer_ms(cs.reply_bytes, t_edge + up + 30.0 + cs.cloud_ms[i])
            radio = (r.alpha_up * cs.payload_bytes[i] * 8e-6 + r.alpha_down * cs.reply_bytes * 8e-6
                     + r.beta * (up + down) / 1e3)
            per_request.append(POWER.active_w * cs.edge_ms[i] + radio
                               + POWER.idle_w * (up + 30.0 + down + cs.cloud_ms[i]))
        assert c.energy_mj == pytest.approx(np.mean(per_request), rel=1e-9)
    assert plan.objective == "energy" and plan.chosen.energy_mj == min(c.energy_mj for c in plan.candidates)


def test_cost_by_hand():
    edge, cloud = synthetic_pair(2, n_cuts=2, bits=(4,), edge_ms=30.0, cloud_ms=3.0)
    price = CloudPrice(per_hour=3.6, per_gb=0.5)  # 3.6 per hour = 0.001 per second
    plan = CandidateSet(edge, cloud).solve(ConstantLink("2mbit", "20ms"), max_loss=None, goal=Goal("cost", price=price))
    c = plan.candidate("cloud-only")
    seconds = (cloud.input.decode_ms.median + cloud.whole_model_ms.median) / 1e3
    assert c.cost == pytest.approx(seconds * 0.001 + (edge.input.compressed_bytes + edge.reply_bytes) / 1e9 * 0.5,
                                   rel=1e-9)
    assert plan.candidate("edge-only").cost == 0.0 and plan.kind == "edge-only"
    assert c.energy_mj is None and "cost" in plan.to_dict() and "energy_mj" not in plan.to_dict()


def test_goal_and_radio_checks():
    assert parse_radio("lte:beta=1200,tail_ms=5000") == replace(RADIOS["lte"], beta=1200.0, tail_ms=5000.0)
    for bad, msg in (("5g", "unknown link type"), ("lte:gamma=1", "KEY=VALUE"), ("lte:beta=x", "not a number"),
                     ("lte:beta=-1", ">= 0")):
        with pytest.raises(SolveError, match=msg):
            parse_radio(bad)
    with pytest.raises(SolveError, match="cloud price"):
        Goal("cost")
    with pytest.raises(SolveError, match="latency limit"):
        Goal("energy", max_latency_ms=0)
    with pytest.raises(SolveError, match="unknown objective"):
        Goal("joules")
    assert Goal().plain and not Goal(max_latency_ms=100).plain


def test_power_fields_declared_assumed_and_backwards_compatible(tmp_path):
    edge, _ = synthetic_pair(1, n_cuts=1, bits=(4,))
    assert profile_power(edge) == ASSUMED and ASSUMED.source == "assumed"
    assert parse_power("2.5,0.4") == EdgePower(2.5, 0.4, "declared")
    assert parse_power("1.5").source == "declared"
    for bad in ("x", "1,2,3", "-1", "nan"):
        with pytest.raises(ProfileError):
            parse_power(bad)
    declared = replace(edge, device={**edge.device, "power": parse_power("2.5,0.4").to_dict()})
    loaded = Profile.load(declared.save(tmp_path / "p.json"))
    assert profile_power(loaded) == EdgePower(2.5, 0.4, "declared")
    old = Profile.load(edge.save(tmp_path / "old.json"))  # a profile without power still loads: assumed
    assert profile_power(old) == ASSUMED
    broken = replace(edge, device={**edge.device, "power": {"active_w": "hot"}})
    with pytest.raises(ProfileError, match="device.power"):
        profile_power(broken)
    with pytest.raises(ProfileError, match=r"device.power of profile .*bad.json"):  # checked when loaded
        Profile.load(broken.save(tmp_path / "bad.json"))


def test_rapl_reads_a_powercap_tree(tmp_path, monkeypatch):
    assert not Rapl(tmp_path / "none").available() and "no RAPL" in Rapl(tmp_path / "none").why
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "energy_uj").write_text("999000000\n")
    (zone / "max_energy_range_uj").write_text("1000000000\n")
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-zone (core): not summed
    rapl = Rapl(tmp_path)
    assert rapl.available() and rapl.zones == [zone]
    clock = iter([0.0, 1.0])
    monkeypatch.setattr("planner.profile.power.time.perf_counter", lambda: next(clock))
    # the counter wraps: 999 J -> 4 J with a 1000 J range is 5 J in the 1 s the work took
    assert rapl.watts(lambda: (zone / "energy_uj").write_text("4000000\n"), min_seconds=0.5) == pytest.approx(5.0)


def test_cli_contract(capsys, tmp_path):
    edge, cloud = synthetic_pair(3, n_cuts=3, bits=(2, 4), edge_ms=80.0, cloud_ms=1.0)
    e, c = edge.save(tmp_path / "e.json"), cloud.save(tmp_path / "c.json")
    base = ["plan", "--edge", str(e), "--cloud", str(c), "--bandwidth", "1mbit", "--rtt", "40ms", "--json"]
    assert main(base) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "energy_mj" not in plain and all("energy_mj" not in r for r in plain["candidates"])
    assert main(base + ["--link", "lte", "--objective", "energy", "--max-latency", "200ms"]) == 0
    out = json.loads(capsys.readouterr().out)
    for row in [out] + out["candidates"]:
        assert isinstance(row["energy_mj"], float) and set(row["energy_parts"]) == {"compute", "radio", "idle"}
        assert row["energy_mj"] == pytest.approx(sum(row["energy_parts"].values()), rel=1e-6)
    assert out["objective"] == "energy" and out["predicted_ms"] <= 200
    assert out["energy_mj"] == min(r["energy_mj"] for r in out["candidates"] if r["feasible"])
    assert main(base + ["--objective", "cost", "--cloud-price", "1.2", "--link", "wifi", "--breakpoints"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all("cost" in r and "energy_mj" in r for r in out["candidates"]) and "breakpoints" in out
    assert main(base[:-1] + ["--link", "lte", "--objective", "energy", "--max-latency", "1ms"]) == 0
    text = capsys.readouterr().out
    assert "no candidate meets the latency limit of 1 ms" in text and "energy:" in text
    with pytest.raises(SystemExit) as exc:
        main(base + ["--link", "4g"])
    assert exc.value.code == 2
    for extra, msg in ((["--objective", "energy"], "--link"), (["--objective", "cost"], "--cloud-price")):
        assert main(base + extra) == 2
        assert msg in capsys.readouterr().err


def test_profile_records_declared_or_measured_power(tmp_path, capsys, monkeypatch):
    common = ["profile", "--arch", "resnet18", "--input", "3x32x32", "--repeats", "1", "--max-seconds", "0",
              "--bits", "4", "--threads", "1", "--role", "edge"]
    out = tmp_path / "e.json"
    assert main(common + ["--out", str(out), "--edge-power-w", "4.5,0.8"]) == 0
    assert profile_power(Profile.load(out)) == EdgePower(4.5, 0.8, "declared")
    monkeypatch.setattr("planner.profile.power.POWERCAP", tmp_path / "no-powercap")
    assert main(common + ["--out", str(out)]) == 0
    assert "not measured (no RAPL package zone" in capsys.readouterr().err
    assert profile_power(Profile.load(out)) == ASSUMED  # nothing recorded: plans assume, and say so
    from argparse import Namespace

    from planner.cli.profile import with_power

    zone = tmp_path / "rapl" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text("0\n")
    monkeypatch.setattr("planner.profile.power.POWERCAP", tmp_path / "rapl")
    ticks = iter(range(100))

    def work():  # 2 J per call of the model, 1 J per sleep
        (zone / "energy_uj").write_text(f"{int((zone / 'energy_uj').read_text()) + 2_000_000}\n")

    monkeypatch.setattr("planner.profile.power.time.perf_counter", lambda: float(next(ticks)))
    monkeypatch.setattr("planner.profile.power.time.sleep",
                        lambda s: (zone / "energy_uj").write_text(f"{int((zone / 'energy_uj').read_text()) + 10**6}"))
    args = Namespace(role="edge", edge_power_w=None, cpu_quota=None, edge_slowdown=None)
    measured = with_power(Profile.load(out), args, work)
    assert profile_power(measured) == EdgePower(2.0, 1.0, "measured")


def test_report_energy_frames_agree_with_the_solver():
    from planner.report_energy import energy_figure, energy_frame, pareto_energy, pareto_energy_figure

    edge, cloud = synthetic_pair(6, n_cuts=4, bits=(2, 4, 8), edge_ms=90.0, cloud_ms=1.0)
    frame = energy_frame(edge, cloud, radio="wifi", rtt_ms=30.0, bandwidths_bps=[2e5, 5e6])
    cs = CandidateSet(edge, cloud)
    for bw, rows in frame.groupby("bandwidth_mbps"):
        plan = cs.solve(ConstantLink(bw * 1e6, 30.0), goal=Goal("energy", energy=EnergyModel("wifi")))
        best = rows[rows["optimal"]]
        assert len(best) == 1 and best["energy_mj"].iloc[0] == pytest.approx(plan.chosen.energy_mj)
        assert rows["energy_mj"].min() == pytest.approx(plan.chosen.energy_mj)
        assert set(rows["cut"]) == set(cs.cuts)
    pf = pareto_energy(edge, cloud, ConstantLink("1mbit", "30ms"), radio="wifi")
    for r in pf.itertuples():  # on the front iff no other is at least as good on both and better on one
        dominated = ((pf["latency_ms"] <= r.latency_ms) & (pf["energy_mj"] <= r.energy_mj)
                     & ((pf["latency_ms"] < r.latency_ms) | (pf["energy_mj"] < r.energy_mj))).any()
        assert r.on_front == (not dominated)
    assert pf["latency_optimal"].sum() == 1 and pf["energy_optimal"].sum() == 1
    assert pf[pf["energy_optimal"]]["on_front"].all() and pf[pf["latency_optimal"]]["on_front"].all()
    assert len(energy_figure(frame).axes) == 1 and len(pareto_energy_figure(pf).axes) == 1
