import os
import time

import pytest

from planner.profile.quota import QuotaError, check_available, cpu_quota, period_for
from planner.profile.timing import Timing, measure


def test_measure_known_sleep_order_statistics():
    t = measure(lambda: time.sleep(0.004), warmup=1, min_repeats=5, max_seconds=0.5)
    assert 3.9 <= t.median <= 8.0  # sleep never returns early; a loaded machine may add a little
    assert t.p10 <= t.median <= t.p90 and t.iqr >= 0 and t.n >= 5


def test_measure_respects_time_cap():
    start = time.perf_counter()
    t = measure(lambda: time.sleep(0.001) if time.perf_counter_ns() % 2 else time.sleep(0.003),
                min_repeats=5, max_seconds=0.3, rel_spread=0.0)
    assert time.perf_counter() - start < 1.5 and 5 <= t.n <= 400


def test_timing_round_trip():
    t = Timing.from_samples([1.0, 2.0, 3.0, 4.0, 5.0])
    assert t.median == 3.0 and t.iqr == 2.0 and t.n == 5
    assert Timing(**t.to_dict()) == t


def test_period_for_fraction():
    assert period_for(0.125) == (1000, 8000)
    assert period_for(0.5) == (1000, 2000)
    quota, period = period_for(2.0)
    assert quota / period == 2.0
    with pytest.raises(QuotaError):
        period_for(0)


def test_no_quota_is_a_noop():
    with cpu_quota(None) as q:
        assert q is None


@pytest.mark.root
def test_quota_slows_cpu_bound_work():
    if os.geteuid() != 0:
        pytest.skip("needs root to create a cgroup")
    try:
        check_available()
    except QuotaError as exc:
        pytest.skip(str(exc))

    def spin():
        x = 0
        for i in range(200_000):
            x += i
        return x

    free = measure(spin, max_seconds=1.0)
    with cpu_quota(0.25):
        slow = measure(spin, max_seconds=3.0)
    assert slow.median > 2.0 * free.median  # a quarter core: ~4x slower, at least 2x on a noisy machine
