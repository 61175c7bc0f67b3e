"""The fixed cost of one exchange: a small frame's round trip through the real client and server code.

Framing, syscalls, the server's event loop and its worker-thread hop cost the same on any link, on top of the
RTT and the bytes' wire time. The profiler measures it on loopback (where RTT and wire time are ~0) with a
handler that computes nothing, and the solver adds it to every candidate that uses the cloud.
"""

from __future__ import annotations

import numpy as np

from planner.profile.timing import Timing

_CLASSES = 10


class _Echo:
    """A handler that computes nothing: the exchange's cost alone."""

    model = "planner-exchange-probe"

    def infer(self, payload: bytes):
        return np.zeros((1, _CLASSES), dtype=np.float32), {"decode_ms": 0.0, "tail_ms": 0.0}


def measure_exchange(repeats: int = 30, warmup: int = 5) -> Timing:
    """Median (IQR, p10, p90) over `repeats` loopback INFER round trips of a 1-sample payload: the edge's wall
    time less the server's compute and queue (so the server's framing and thread hop are in)."""
    from planner.compress import codec
    from planner.runtime.client import CloudClient
    from planner.runtime.server import CloudServer

    payload = codec.encode(np.zeros((1, 8, 7, 7), dtype=np.uint8), "probe", 4)
    server = CloudServer(_Echo(), port=0, workers=1)
    port = server.start_in_thread()
    try:
        with CloudClient(f"127.0.0.1:{port}", timeout=5.0) as client:
            replies = [client.infer(_Echo.model, payload) for _ in range(warmup + repeats)][warmup:]
    finally:
        server.stop_thread()
    a = np.asarray([r.wall_ms - r.decode_ms - r.tail_ms - r.queue_wait_ms for r in replies])
    q = np.percentile(a, [10, 25, 75, 90])
    return Timing(median=float(np.median(a)), iqr=float(q[2] - q[1]), n=int(a.size), p10=float(q[0]),
                  p90=float(q[3]))
