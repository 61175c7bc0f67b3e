import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import LinkError
from planner.link import (
    MAHIMAHI_PACKET,
    ConstantLink,
    LiveEstimate,
    TraceLink,
    available_traces,
    make,
    parse_bandwidth,
    parse_duration,
)


@pytest.mark.parametrize("text, bps", [
    ("10mbit", 10e6), ("10Mbps", 10e6), ("10 Mbit/s", 10e6), ("2MB/s", 16e6), ("2MBps", 16e6), ("500kbit", 500e3),
    ("500Kbps", 500e3), ("1gbit", 1e9), ("64kB/s", 512e3), ("1.5e3bit", 1500.0), ("100bps", 100.0), ("1Mibit", 2**20),
    ("3 bytes/s", 24.0), (2e6, 2e6),
])
def test_parse_bandwidth(text, bps):
    assert parse_bandwidth(text) == pytest.approx(bps)


@pytest.mark.parametrize("text, ms", [("20ms", 20.0), ("0.5s", 500.0), ("150us", 0.15), ("2 sec", 2000.0),
                                      ("1min", 60000.0), (7, 7.0)])
def test_parse_duration(text, ms):
    assert parse_duration(text) == pytest.approx(ms)


@pytest.mark.parametrize("text, message", [
    ("10", "no unit"), ("10 furlongs", "unknown bandwidth unit"), ("-5mbit", "positive"), ("0kbit", "positive"),
    ("fast", "cannot read bandwidth"), ("nanmbit", "cannot read"), (0, "positive"), (float("inf"), "finite"),
])
def test_parse_bandwidth_errors(text, message):
    with pytest.raises(LinkError, match=message):
        parse_bandwidth(text)


@pytest.mark.parametrize("text, message", [("20", "unknown duration unit"), ("20 parsecs", "unknown duration unit"),
                                           ("-1ms", "positive"), ("0ms", "positive"), ("soon", "cannot read")])
def test_parse_duration_errors(text, message):
    with pytest.raises(LinkError, match=message):
        parse_duration(text)


def test_zero_rtt_is_allowed_where_it_means_an_ideal_link():
    assert parse_duration("0ms", allow_zero=True) == 0.0
    assert ConstantLink("1mbit", "0ms").rtt_ms == 0.0


def test_constant_link():
    link = make("constant", bandwidth="1mbit", rtt="20ms")
    assert link.rtt_ms == 20.0
    assert link.transfer_ms(125_000) == pytest.approx(1000.0)
    assert np.allclose(link.transfer_ms(np.array([0, 1250]), 5.0), [0.0, 10.0])


def test_registry_errors():
    with pytest.raises(LinkError, match="unknown link model 'carrier-pigeon'.*constant, trace, live"):
        make("carrier-pigeon")
    with pytest.raises(LinkError, match="bad arguments for link model 'constant'"):
        make("constant", bandwdith="1mbit")


# -- traces vs a direct simulation ------------------------------------------------------------------------
def simulate_rates(durations_s, mbps, nbytes, start_ms):
    """Walk the trace segment by segment from `start_ms` until `nbytes` are through."""
    seg = [d * 1e3 for d in durations_s]
    period = sum(seg)
    k, pos = divmod(start_ms, period)
    i, offset = 0, pos
    while offset >= seg[i]:
        offset -= seg[i]
        i += 1
    t, need = start_ms, nbytes * 8.0
    for _ in range(100_000):
        rate = mbps[i] * 1e3  # bits/ms
        left = seg[i] - offset
        if rate > 0 and rate * left >= need:
            return t + need / rate - start_ms
        need -= rate * left
        t += left
        i, offset = (i + 1) % len(seg), 0.0
    raise AssertionError("simulation did not finish")


def simulate_mahimahi(stamps, nbytes, start_ms):
    """Count delivery opportunities of the unrolled trace from `start_ms` on."""
    period, packets, k = stamps[-1], math.ceil(nbytes / MAHIMAHI_PACKET), 0
    while True:
        for s in stamps:
            t = k * period + s
            if t >= start_ms:
                packets -= 1
                if packets == 0:
                    return t - start_ms
        k += 1


rate_traces = st.lists(st.tuples(st.floats(0.05, 5.0), st.sampled_from([0.0, 0.0, 0.01, 0.3, 1.0, 4.0])),
                       min_size=2, max_size=12).filter(lambda r: any(m > 0 for _, m in r))


@settings(max_examples=100, deadline=None)
@given(trace=rate_traces, nbytes=st.integers(1, 3_000_000), start_ms=st.floats(0, 200_000))
def test_rate_trace_matches_simulation(trace, nbytes, start_ms):
    durations, mbps = zip(*trace, strict=True)
    times = np.cumsum(durations)  # time stamps: each sample covers the gap before it
    got = TraceLink.from_rates(times, mbps).transfer_ms(nbytes, start_ms)
    # from_rates gives the first sample the length of the first gap
    want = simulate_rates([durations[1], *durations[1:]], mbps, nbytes, start_ms)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(stamps=st.lists(st.integers(0, 300), min_size=1, max_size=40).map(sorted).filter(lambda s: s[-1] > 0),
       nbytes=st.integers(1, 200_000), start_ms=st.floats(0, 5000))
def test_mahimahi_trace_matches_simulation(stamps, nbytes, start_ms):
    link = TraceLink.from_mahimahi(stamps)
    assert link.transfer_ms(nbytes, start_ms) == pytest.approx(simulate_mahimahi(stamps, nbytes, start_ms), abs=1e-9)


def test_mahimahi_opportunity_at_the_period_boundary():
    link = TraceLink.from_mahimahi([0, 5, 10])  # absolute opportunities 0, 5, 10, 10, 15, 20, 20, ...
    assert link.transfer_ms(1500, 10.0) == 0.0
    assert link.transfer_ms(3000, 10.0) == 0.0
    assert link.transfer_ms(4500, 10.0) == 5.0
    assert link.transfer_ms(1, 10.5) == 4.5


def test_trace_vectorized_equals_scalar():
    link = TraceLink.load("hsdpa_norway_metro_9")
    sizes, starts = np.array([100, 5_000, 200_000]), np.linspace(0, 4e5, 7)
    grid = link.transfer_ms(sizes[:, None], starts[None, :])
    assert grid.shape == (3, 7)
    assert all(grid[i, j] == pytest.approx(link.transfer_ms(int(sizes[i]), float(starts[j])))
               for i in range(3) for j in range(7))


def test_outage_waits_for_the_link_to_come_back():
    link = TraceLink.load("outage")  # 0.5 Mbit/s, 0 during seconds 17-20 of every 20 s
    assert link.transfer_ms(625, 17_500.0) == pytest.approx(2_500.0 + 10.0)  # waits 2.5 s, then 10 ms
    assert link.transfer_ms(625, 16_995.0) == pytest.approx(3_000.0 + 10.0)  # 5 ms before, 5 ms after
    assert link.bandwidth_at(18_000.0) == 0.0


def test_trace_that_never_delivers_is_a_clear_error(tmp_path):
    (tmp_path / "dead.tsv").write_text("1\t0\n2\t0\n3\t0.0\n")
    with pytest.raises(LinkError, match="never delivers"):
        TraceLink.load(tmp_path / "dead.tsv")


@pytest.mark.parametrize("content, message", [
    ("", "empty"), ("1\t2\t3\n", "line 1: expected 2 number"), ("1\t1\n1\t1\n", "increase strictly"),
    ("1\t1\n2\t-1\n", ">= 0 Mbit/s"), ("1\t1\n2\tfast\n", "line 2"), ("0\n0\n", "must be > 0 ms"),
    ("5\n3\n", "non-decreasing"),
])
def test_bad_trace_files(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(LinkError, match=message):
        TraceLink.load(path)


def test_csv_with_header_and_commas(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("seconds,mbps\n1,1.0\n2,2.0  # comment\n")
    link = TraceLink.load(path, rtt="10ms")
    assert link.period_ms == 2000.0 and link.rtt_ms == 10.0
    assert link.mean_bps == pytest.approx(1.5e6)
    assert link.transfer_ms(125_000 + 250_000, 0.0) == pytest.approx(2000.0)


def test_shipped_traces_and_unknown_name():
    names = available_traces()
    assert {"hsdpa_norway_train_1.tsv", "outage.tsv", "step_drop.mahimahi", "steady.tsv"} <= set(names)
    assert make("trace", path="steady").mean_bps == pytest.approx(0.5e6)
    assert TraceLink.load("step_drop.mahimahi").kind == "mahimahi"
    with pytest.raises(LinkError, match="no trace file 'nope'.*shipped: "):
        TraceLink.load("nope")


def test_live_estimate_ewma_and_harmonic():
    live = make("live", initial="1mbit", rtt="30ms", alpha=0.5)
    assert live.bandwidth_bps == 1e6 and live.transfer_ms(125_000) == pytest.approx(1000.0)
    live.observe(125_000, 500.0)  # 2 Mbit/s: the first sample replaces the prior
    assert live.bandwidth_bps == pytest.approx(2e6)
    live.observe(125_000, 1000.0)  # 1 Mbit/s
    assert live.bandwidth_bps == pytest.approx(1.5e6)
    live.observe_rtt(10.0)
    live.observe_rtt(20.0)
    assert live.rtt_ms == pytest.approx(0.875 * 10.0 + 0.125 * 20.0)

    harmonic = LiveEstimate(method="harmonic", window=2)
    for ms in (1000.0, 500.0, 250.0):  # 1, 2, 4 Mbit/s; only the last two count
        harmonic.observe(125_000, ms)
    assert harmonic.bandwidth_bps == pytest.approx(2 / (1 / 2e6 + 1 / 4e6))
    with pytest.raises(LinkError, match="bytes > 0 and time > 0"):
        harmonic.observe(100, 0.0)
    with pytest.raises(LinkError, match="unknown estimate method"):
        LiveEstimate(method="median")
