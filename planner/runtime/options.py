"""The edge client's and the cloud server's options, with their defaults (from `planner.config`), what each one
does and what it accepts: both check themselves when made (`planner.rules`), so `planner.run(**options)`,
`EdgeClient`, `CloudServer` and the CLI flags built from them refuse the same values with the same message."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from planner import config
from planner.rules import COUNT, FRACTION, SECONDS, Choice, Number, OptionError, check_fields, rule

ESTIMATORS = ("harmonic", "ewma")
PAYLOAD_STATS = ("mean", "p95")
RUNTIMES = ("torch", "onnxruntime")


@dataclass(frozen=True)
class EdgeOptions:
    """How an `EdgeClient` plans, measures and falls back. Every field can be given to `planner.run` by name."""

    link: object = config.DEFAULT_LINK  # starting bandwidth estimate: '10mbit', a ConstantLink/TraceLink or a LiveEstimate
    rtt: str | float | None = None  # round-trip time of the link (None: the link's own, else 20 ms)
    max_loss: float | None = field(default=config.DEFAULT_MAX_LOSS, metadata=rule(
        Number(0, none=True, unit="percentage points")))  # accuracy budget (None: no budget)
    token: str | None = None  # shared secret the server asks for
    timeout: float = field(default=config.DEFAULT_TIMEOUT_S, metadata=rule(SECONDS))  # seconds to wait for a reply
    edge_cpu_quota: float | None = field(default=None, metadata=rule(Number(0, 1, open_low=True, none=True)))
    # ^ run the edge compute under this fraction of a core (emulated weak edge)
    estimator: str = field(default="harmonic", metadata=rule(Choice(ESTIMATORS)))  # 'harmonic' (last N) or 'ewma'
    replan: bool = True  # plan every request on the live estimate (False: keep the first plan)
    payload: str = field(default="mean", metadata=rule(Choice(PAYLOAD_STATS)))  # profiles' payload statistic
    backoff_s: float = field(default=config.DEFAULT_BACKOFF_S, metadata=rule(SECONDS))  # first wait after a failure
    backoff_max_s: float = field(default=config.DEFAULT_BACKOFF_MAX_S, metadata=rule(SECONDS))  # the longest wait
    min_sample_ms: float = field(default=10.0, metadata=rule(Number(0, unit="ms")))
    # ^ transfers shorter than this may only raise the bandwidth estimate
    load_aware: bool = True  # add the cloud's reported queue wait to every cloud candidate
    queue_alpha: float = field(default=0.3, metadata=rule(FRACTION))  # EWMA weight of a new queue-wait sample
    queue_half_life_s: float = field(default=2.0, metadata=rule(SECONDS))  # the queue estimate's fading half-life
    warm: bool = True  # split at every cut and run the model once before the first request
    edge_slowdown: float = field(default=1.0, metadata=rule(Number(1)))
    # ^ emulate an edge K times slower: every edge computation of t waits (K - 1) t more
    calibrate: bool = True  # correct the profiles online with what each request measures
    calibration_alpha: float = field(default=0.2, metadata=rule(FRACTION))  # EWMA weight of a calibration sample
    explore: float = field(default=config.DEFAULT_EXPLORE, metadata=rule(Number(0, 0.5)))
    # ^ share of requests that probe the other side's best candidate (0: never)
    freshness_runs: int = field(default=5, metadata=rule(Number(0, integer=True)))
    # ^ whole-model runs at start that check the edge profile (0: no check)
    tls: object = None  # TLS to the cloud: None (plain TCP), True (system CA store), a CA file, or an SSLContext
    autoencoder: object = None  # a file from `planner train-ae --out`, 'shared'/'independent'/'none' or an object
    # (None: a zoo model's committed one the edge profile names; none for other models)
    quantizer: object = "auto"  # the raw quantizer: 'auto' (a zoo model's committed one), a calibration file, None
    edge_runtime: str = field(default="torch", metadata=rule(Choice(RUNTIMES)))  # what runs head + encoder
    onnx: str | None = None  # the `planner export` folder the onnxruntime edge runs
    objective: object = "mean"  # what each plan minimises: 'mean' (latency), 'energy' (LTE radio model, the edge
    # profile's power), or a planner.objectives.Goal (energy / cost, a latency limit); results then carry energy_mj
    plan: object = None  # pin every request to this candidate ('relu_3@4', a CandidateSpec; None: plan each)
    strict_identity: bool = True  # refuse a server that does not announce an identity this edge has

    def __post_init__(self) -> None:
        from planner.link import parse_bandwidth, parse_duration
        from planner.objectives import as_goal
        from planner.types import CandidateSpec

        check_fields(self)
        if self.backoff_max_s < self.backoff_s:
            raise OptionError(f"backoff_max_s must be >= backoff_s ({self.backoff_s:g}), got {self.backoff_max_s:g}")
        if isinstance(self.link, str):
            parse_bandwidth(self.link)
        if isinstance(self.rtt, str):
            parse_duration(self.rtt, allow_zero=True)
        elif self.rtt is not None:
            Number(0, unit="ms").check("rtt", self.rtt)
        if self.plan is not None and not isinstance(self.plan, CandidateSpec):
            object.__setattr__(self, "plan", CandidateSpec.parse(self.plan))
        as_goal(self.objective)  # an unknown objective is refused before anything loads
        if self.edge_runtime == "onnxruntime" and self.onnx is None:
            raise OptionError("edge_runtime 'onnxruntime' needs onnx: the export folder (--onnx DIR from `planner "
                              "export`)")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def updated(self, **overrides) -> EdgeOptions:
        """A copy with `overrides` applied (and checked); an unknown name is an OptionError listing the known."""
        return _updated(self, overrides, "edge")


@dataclass(frozen=True)
class ServerOptions:
    """What a `CloudServer` accepts per connection and request, and how long it waits."""

    host: str = config.DEFAULT_HOST  # address to bind (loopback unless told otherwise)
    port: int = field(default=config.DEFAULT_PORT, metadata=rule(Number(0, 65535, integer=True)))  # 0: any free
    max_frame: int = field(default=config.DEFAULT_MAX_FRAME, metadata=rule(COUNT))  # largest request, bytes
    workers: int | None = field(default=None, metadata=rule(Number(1, integer=True, none=True)))
    # ^ compute threads (None: the CPU cores)
    token: str | None = None  # shared token every client must present
    read_timeout: float = field(default=config.DEFAULT_READ_TIMEOUT_S, metadata=rule(SECONDS))
    idle_timeout: float = field(default=config.DEFAULT_IDLE_TIMEOUT_S, metadata=rule(SECONDS))
    max_connections: int = field(default=config.DEFAULT_MAX_CONNECTIONS, metadata=rule(COUNT))
    max_unauthenticated: int = field(default=config.DEFAULT_MAX_UNAUTHENTICATED, metadata=rule(COUNT))
    # ^ connections in their TLS handshake or before their HELLO, at most (the oldest is dropped)
    max_batch: int = field(default=config.DEFAULT_MAX_BATCH, metadata=rule(COUNT))  # inputs per request
    max_reply: int = field(default=config.DEFAULT_MAX_REPLY, metadata=rule(COUNT))  # largest reply, bytes
    compute_timeout: float = field(default=config.DEFAULT_COMPUTE_TIMEOUT_S, metadata=rule(SECONDS))
    grace_s: float = field(default=5.0, metadata=rule(Number(0, unit="seconds")))  # drain time on stop

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def updated(self, **overrides) -> ServerOptions:
        return _updated(self, overrides, "server")


def _updated(options, overrides: dict, what: str):
    unknown = sorted(set(overrides) - set(options.names()))
    if unknown:
        raise OptionError(f"unknown {what} option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: the "
                          f"options are {', '.join(options.names())}")
    return dataclasses.replace(options, **overrides)
