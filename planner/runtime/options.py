"""The edge client's options, with their defaults and what each one does (`planner.run(**options)` takes them)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from planner.config import DEFAULT_BACKOFF_MAX_S, DEFAULT_BACKOFF_S, DEFAULT_MAX_LOSS
from planner.errors import PlannerError


@dataclass(frozen=True)
class EdgeOptions:
    """How an `EdgeClient` plans, measures and falls back. Every field can be given to `planner.run` by name."""

    link: object = "10mbit"  # starting bandwidth estimate: '10mbit', a ConstantLink/TraceLink, or a LiveEstimate
    rtt: str | float | None = None  # round-trip time of the link (None: the link's own, else 20 ms)
    max_loss: float | None = DEFAULT_MAX_LOSS  # accuracy budget in percentage points (None: no budget)
    token: str | None = None  # shared secret the server asks for
    timeout: float = 5.0  # seconds to wait for a reply (stretched for large predicted transfers)
    edge_cpu_quota: float | None = None  # run the edge compute under this fraction of a core (emulated weak edge)
    estimator: str = "harmonic"  # bandwidth estimator: 'harmonic' (mean of the last N) or 'ewma'
    replan: bool = True  # plan every request on the live estimate (False: keep the first plan)
    payload: str = "mean"  # payload statistic of the profiles to plan with: 'mean' or 'p95'
    backoff_s: float = DEFAULT_BACKOFF_S  # first wait after the cloud failed, doubled per failure
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S  # the longest wait
    min_sample_ms: float = 10.0  # transfers shorter than this may only raise the bandwidth estimate
    load_aware: bool = True  # add the cloud's reported queue wait to every cloud candidate
    queue_alpha: float = 0.3  # EWMA weight of a new queue-wait sample
    queue_half_life_s: float = 2.0  # the queue estimate fades with this half-life while no reply comes
    warm: bool = True  # split at every cut and run the model once before the first request
    edge_slowdown: float = 1.0  # emulate an edge K times slower: every edge computation of t waits (K - 1) t more
    calibrate: bool = True  # correct the profiles online with what each request measures
    calibration_alpha: float = 0.2  # EWMA weight of a new calibration sample
    explore: float = 0.05  # share of requests that probe the other side's best candidate (0: never)
    freshness_runs: int = 5  # whole-model runs at start that check the edge profile (0: no check)
    tls: object = None  # TLS to the cloud: None (plain TCP), True (system CA store), a CA file, or an SSLContext
    autoencoder: object = None  # a file from `planner train-ae --out`, 'shared'/'independent'/'none' or an object
    quantizer: object = "auto"  # the raw quantizer: 'auto' (a zoo model's committed one), a calibration file, None
    # (None: a zoo model's committed one the edge profile names; none for other models)
    edge_runtime: str = "torch"  # what runs head + encoder: 'torch' (eager) or 'onnxruntime' (needs `onnx`)
    onnx: str | None = None  # the `planner export` folder the onnxruntime edge runs
    objective: object = "mean"  # what each plan minimises: 'mean' (latency), 'energy' (LTE radio model, the edge
    # profile's power), or a planner.objectives.Goal (energy / cost, a latency limit); results then carry energy_mj

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def updated(self, **overrides) -> EdgeOptions:
        """A copy with `overrides` applied; an unknown name is a PlannerError that lists the known ones."""
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise PlannerError(f"unknown edge option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: the "
                               f"options are {', '.join(self.names())}")
        return dataclasses.replace(self, **overrides)
