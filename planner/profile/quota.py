"""Emulate a weak edge device for real: run work under a Linux CPU quota (cgroup v1 cfs or v2 cpu.max).

`cpu_quota(0.125)` gives the calling thread (or the whole process) an eighth of one core, enforced by the
kernel's CFS bandwidth control with a short period so that even a 1 ms computation sees the quota. The
profiler and the runtime's edge side use the same context manager, so profile and execution agree.
Needs root; anything else raises `QuotaError` saying why.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from pathlib import Path

from planner.errors import PlannerError

V1_ROOT = Path("/sys/fs/cgroup/cpu")
V2_ROOT = Path("/sys/fs/cgroup")
MIN_US = 1000  # the kernel's smallest cfs period and quota


class QuotaError(PlannerError):
    """A CPU quota cannot be applied here (not root, no cgroup cpu controller, bad fraction)."""


def period_for(fraction: float) -> tuple[int, int]:
    """(quota_us, period_us) for `fraction` of one core, with the shortest period the kernel allows."""
    if not 0 < fraction <= 64:
        raise QuotaError(f"cpu quota must be a positive fraction of a core (e.g. 0.125), got {fraction}")
    period = max(MIN_US, round(MIN_US / fraction)) if fraction < 1 else MIN_US * 8
    return max(MIN_US, round(fraction * period)), period


def _v1_available() -> bool:
    return (V1_ROOT / "cpu.cfs_quota_us").exists()


def _v2_available() -> bool:
    controllers = V2_ROOT / "cgroup.controllers"
    return controllers.exists() and "cpu" in controllers.read_text().split()


def check_available() -> str:
    """'v1' or 'v2' when a CPU quota can be applied, else QuotaError naming the missing piece."""
    if os.geteuid() != 0:
        raise QuotaError("--cpu-quota needs root (it creates a cgroup); run as root or drop the option")
    if _v1_available():
        return "v1"
    if _v2_available():
        return "v2"
    raise QuotaError("no cgroup CPU controller found (/sys/fs/cgroup/cpu for v1, cpu in cgroup.controllers for v2)")


@contextlib.contextmanager
def cpu_quota(fraction: float | None, scope: str = "thread"):
    """Run the body with `fraction` of one core. scope='thread' moves only the calling thread (cgroup v1),
    'process' moves the whole process. None -> no quota (a no-op), so callers need no branches."""
    if fraction is None:
        yield None
        return
    if scope not in ("thread", "process"):
        raise QuotaError(f"scope must be 'thread' or 'process', got {scope!r}")
    quota, period = period_for(fraction)
    version = check_available()
    name = f"planner-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if version == "v1":
        group, parent = V1_ROOT / name, V1_ROOT
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(period))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
        member_file = "tasks" if scope == "thread" else "cgroup.procs"
    else:
        if scope == "thread":
            scope = "process"  # v2 moves threads only in threaded sub-trees; keep it simple and whole-process
        group, parent = V2_ROOT / name, V2_ROOT
        group.mkdir()
        (group / "cpu.max").write_text(f"{quota} {period}")
        member_file = "cgroup.procs"
    member = str(threading.get_native_id() if member_file == "tasks" else os.getpid())
    try:
        (group / member_file).write_text(member)
        yield {"quota_us": quota, "period_us": period, "cgroup": version, "scope": scope}
    finally:
        with contextlib.suppress(OSError):
            (parent / member_file).write_text(member)
        with contextlib.suppress(OSError):
            group.rmdir()
