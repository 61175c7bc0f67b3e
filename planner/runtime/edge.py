"""The edge side of split inference: plan each request, run the head and encoder, send, and fall back locally.

`EdgeClient` holds the model's heads and the shared encoder (a `SplitPipeline`), the two device profiles,
a live bandwidth estimate and a `CloudClient`. Per request it solves for the fastest (cut, bits) on the
current estimate, runs the edge part, sends the payload, and folds the measured transfer into the estimate,
so the next request is planned on what the link just did. It also keeps an estimate of the cloud's queueing
delay from the waits the server reports and (`load_aware`) adds it to every candidate that uses the cloud, so a
saturated cloud moves the plan to edge-only (a constant wait leaves the order of the cloud candidates as it is).
When the cloud is unreachable, refuses or times out, the request is computed fully on the edge and marked
`fallback`; while the client backs off, requests go straight to the edge. Every input gets a `Result` (a
prediction, or an explicit `error`).

`run(inputs, model=..., cloud=..., ...)` is the application entry point (`planner.run`).
"""

from __future__ import annotations

import math
import queue
import re
import statistics
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from planner.errors import PlannerError, ProfileError, SolveError
from planner.link import ConstantLink, LiveEstimate, TraceLink, format_bandwidth, parse_bandwidth
from planner.profile.schema import Profile
from planner.runtime.client import CloudClient, CloudUnavailable, ServerError
from planner.solve import DEFAULT_MAX_LOSS, CandidateSet, prepare

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
_PROFILE_NAME = re.compile(r"^(?P<model>.+)_(?P<role>edge|cloud|both)_(?P<where>.+)-(?P<threads>\d+)t"
                           r"(?:-q(?P<quota>[0-9.eE+-]+))?\.json$")


# ------------------------------------------------------------------------------------------------ profiles

def default_profiles(model: str, cpu_quota: float | None = None,
                     dirs: list[str | Path] | None = None) -> tuple[Path, Path]:
    """The committed (edge, cloud) profiles of `model` by the naming rule `MODEL_ROLE_CPU-Nt[-qF].json`.

    The edge profile is the one measured under `cpu_quota` (none: without a quota), preferring this machine's
    CPU and 1 thread; the cloud profile prefers this machine's CPU and the most threads. Looks in ./profiles,
    then in the repository's profiles/.
    """
    from planner.profile.device import cpu_slug

    search = [Path(d) for d in dirs] if dirs is not None else [Path("profiles"), PROFILES_DIR]
    found: list[tuple[Path, re.Match]] = []
    search = list(dict.fromkeys(p.resolve() for p in search))
    for d in (p for p in search if p.is_dir()):
        for path in sorted(d.glob(f"{glob_escape(model)}_*.json")):
            m = _PROFILE_NAME.match(path.name)
            if m and m["model"] == model:
                found.append((path, m))
    here = cpu_slug()

    def quota_of(m: re.Match) -> float | None:
        return float(m["quota"]) if m["quota"] else None

    edges = [(p, m) for p, m in found if m["role"] in ("edge", "both") and _same(quota_of(m), cpu_quota)]
    clouds = [(p, m) for p, m in found if m["role"] in ("cloud", "both") and quota_of(m) is None]
    where = ", ".join(str(d) for d in search)
    if not edges or not clouds:
        q = f" measured under --cpu-quota {cpu_quota:g}" if cpu_quota else ""
        missing = "edge" if not edges else "cloud"
        quota_flag = f" --cpu-quota {cpu_quota:g}" if cpu_quota and missing == "edge" else ""
        raise ProfileError(f"no committed {missing} profile{q} for model {model!r} in {where} (expected "
                           f"{model}_{missing}_<cpu>-<N>t{f'-q{cpu_quota:g}' if quota_flag else ''}.json); "
                           f"measure one with `planner profile --model {model} --role {missing}{quota_flag}` "
                           f"or pass the profile files explicitly")
    edge = min(edges, key=lambda pm: (pm[1]["where"] != here, pm[1]["role"] != "edge", abs(int(pm[1]["threads"]) - 1)))
    cloud = min(clouds, key=lambda pm: (pm[1]["where"] != here, pm[1]["role"] != "cloud", -int(pm[1]["threads"])))
    return edge[0], cloud[0]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9))


def _profile(p: Profile | str | Path) -> Profile:
    return p if isinstance(p, Profile) else Profile.load(p)


# ------------------------------------------------------------------------------------------------ results

def candidate_label(kind: str, cut: str, bits: int | None, dtype: str | None) -> str:
    """The solver's short name of a candidate: 'cloud-only', 'edge-only', 'pool1 raw float32', 'pool1 @ 4 bits'."""
    if kind in ("cloud-only", "edge-only"):
        return kind
    return f"{cut} raw {dtype}" if kind == "raw" else f"{cut} @ {bits} bits"


@dataclass
class Result:
    """One input's outcome: prediction, what ran (cut, bits, kind), predicted and measured times in ms.

    `cut`/`bits`/`kind`/`dtype` describe what was executed (edge-only for a fallback, whose `planned` names
    the candidate the planner had chosen). `transfer_ms` is the edge's wall time of the exchange minus the
    server's time (uplink + downlink + RTT + any wait on the link); `measured_ms` is the whole request, from
    planning to the answer.
    """

    index: int
    prediction: int | None
    label: int | None
    cut: str
    bits: int | None
    kind: str
    predicted_ms: float | None
    measured_ms: float
    edge_ms: float = 0.0
    encode_ms: float = 0.0
    transfer_ms: float = 0.0
    server_decode_ms: float = 0.0
    server_tail_ms: float = 0.0
    queue_wait_ms: float = 0.0
    fallback: bool = False
    error: str | None = None
    dtype: str | None = None
    planned: str | None = None
    fallback_reason: str | None = None
    connect_ms: float = 0.0
    request_bytes: int = 0
    reply_bytes: int = 0
    bandwidth_bps: float | None = None  # the estimate the request was planned with
    scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def label_text(self) -> str:
        return candidate_label(self.kind, self.cut, self.bits, self.dtype)

    @property
    def correct(self) -> bool | None:
        if self.label is None or self.prediction is None:
            return None
        return self.prediction == self.label

    def to_dict(self, scores: bool = False) -> dict:
        """JSON-ready (scores only when asked)."""
        d = asdict(self)
        d.pop("scores")
        if scores:
            d["scores"] = None if self.scores is None else np.asarray(self.scores, dtype=float).ravel().tolist()
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        d = dict(d)
        s = d.pop("scores", None)
        return cls(**d, scores=None if s is None else np.asarray(s, dtype=np.float32))


def _median(xs: list[float]) -> float | None:
    return float(statistics.median(xs)) if xs else None


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


@dataclass
class RunReport:
    """All results of a run and their summary: accuracy, latency median/p95, plans used, fallbacks."""

    results: list[Result]
    model: str
    edge_profile: str
    cloud_profile: str
    link: dict = field(default_factory=dict)  # the starting estimate (and the shaper, when the CLI emulates one)
    final_bandwidth_bps: float | None = None
    wall_s: float = 0.0

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self):
        return iter(self.results)

    @property
    def predictions(self) -> list[int | None]:
        return [r.prediction for r in self.results]

    @property
    def answered(self) -> list[Result]:
        return [r for r in self.results if r.error is None]

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.results)

    @property
    def fallbacks(self) -> int:
        return sum(r.fallback for r in self.results)

    @property
    def accuracy(self) -> float | None:
        """Percent correct over the labelled inputs (None without labels)."""
        marks = [r.correct for r in self.results if r.label is not None]
        return 100.0 * sum(bool(m) for m in marks) / len(marks) if marks else None

    def measured(self) -> list[float]:
        return [r.measured_ms for r in self.answered]

    @property
    def measured_ms_median(self) -> float | None:
        return _median(self.measured())

    @property
    def measured_ms_p95(self) -> float | None:
        return _pct(self.measured(), 95)

    @property
    def measured_ms_p99(self) -> float | None:
        return _pct(self.measured(), 99)

    @property
    def predicted_ms_median(self) -> float | None:
        return _median([r.predicted_ms for r in self.answered if r.predicted_ms is not None])

    def plans(self) -> list[dict]:
        """Per executed candidate (fallbacks apart): count, measured and predicted median ms; most used first."""
        groups: dict[tuple, list[Result]] = {}
        for r in self.answered:
            if not r.fallback:
                groups.setdefault((r.kind, r.cut, r.bits, r.dtype), []).append(r)
        out = [{"cut": cut, "bits": bits, "kind": kind, "dtype": dtype, "label": candidate_label(kind, cut, bits, dtype),
                "count": len(rs), "measured_ms_median": _r(_median([r.measured_ms for r in rs])),
                "predicted_ms_median": _r(_median([r.predicted_ms for r in rs if r.predicted_ms is not None]))}
               for (kind, cut, bits, dtype), rs in groups.items()]
        return sorted(out, key=lambda d: -d["count"])

    def stage_medians(self) -> dict[str, float | None]:
        cloud = [r for r in self.answered if not r.fallback and r.kind != "edge-only"]
        edge = [r for r in self.answered if not r.fallback]
        return {"edge_ms": _r(_median([r.edge_ms for r in edge])), "encode_ms": _r(_median([r.encode_ms for r in edge])),
                "transfer_ms": _r(_median([r.transfer_ms for r in cloud])),
                "server_decode_ms": _r(_median([r.server_decode_ms for r in cloud])),
                "server_tail_ms": _r(_median([r.server_tail_ms for r in cloud])),
                "queue_wait_ms": _r(_median([r.queue_wait_ms for r in cloud]))}

    def to_dict(self, results: bool = False) -> dict:
        """The `planner run --json` object; per-request results only when asked."""
        acc = self.accuracy
        d = {"model": self.model, "n": len(self.results), "answered": len(self.answered), "errors": self.errors,
             "fallbacks": self.fallbacks, "accuracy": None if acc is None else round(acc, 3),
             "measured_ms_median": _r(self.measured_ms_median), "measured_ms_p95": _r(self.measured_ms_p95),
             "measured_ms_p99": _r(self.measured_ms_p99), "predicted_ms_median": _r(self.predicted_ms_median),
             "plans": self.plans(), "stages_ms_median": self.stage_medians(), "edge_profile": self.edge_profile,
             "cloud_profile": self.cloud_profile, "link": self.link, "final_bandwidth_bps": _r(self.final_bandwidth_bps, 1),
             "wall_s": _r(self.wall_s)}
        if results:
            d["results"] = [r.to_dict() for r in self.results]
        return d

    def format(self) -> str:
        """A short human summary."""
        f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        acc = self.accuracy
        labelled = sum(r.label is not None for r in self.results)
        lines = [f"model {self.model}: {len(self.results)} requests in {self.wall_s:.1f} s "
                 f"(edge profile {self.edge_profile}, cloud profile {self.cloud_profile})",
                 f"accuracy: {'-' if acc is None else f'{acc:.2f} %'} ({labelled} labelled)",
                 f"latency: measured median {f(self.measured_ms_median)} ms, p95 {f(self.measured_ms_p95)} ms; "
                 f"predicted median {f(self.predicted_ms_median)} ms",
                 "stages (median ms): " + ", ".join(f"{k.removesuffix('_ms')} {f(v)}"
                                                     for k, v in self.stage_medians().items()),
                 f"fallbacks: {self.fallbacks}, errors: {self.errors}"]
        start = self.link.get("bandwidth_bps")
        if start and self.final_bandwidth_bps:
            lines.append(f"bandwidth estimate: {format_bandwidth(start)} at start, "
                         f"{format_bandwidth(self.final_bandwidth_bps)} at the end")
        rows = [("plan", "count", "measured ms", "predicted ms")]
        rows += [(p["label"], str(p["count"]), f(p["measured_ms_median"]), f(p["predicted_ms_median"]))
                 for p in self.plans()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines += ["  " + "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths,
                                                                                                        strict=True)))
                  for r in rows]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ edge compute

class _QuotaThread:
    """One thread held under a CPU quota that runs the edge's compute (emulated weak device), as the profiler's
    edge side ran; planning and networking stay on the caller's thread."""

    def __init__(self, fraction: float) -> None:
        from planner.profile.quota import check_available

        check_available()
        self.fraction = fraction
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"planner-edge-q{fraction:g}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        from planner.profile.quota import cpu_quota

        try:
            with cpu_quota(self.fraction, scope="thread"):
                self._ready.set()
                while (job := self._jobs.get()) is not None:
                    fn, args, fut = job
                    try:
                        fut.set_result(fn(*args))
                    except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                        fut.set_exception(exc)
        except BaseException as exc:  # noqa: BLE001 - the quota could not be applied: reported by __init__
            self._error = exc
            self._ready.set()

    def __call__(self, fn, *args):
        fut: Future = Future()
        self._jobs.put((fn, args, fut))
        return fut.result()

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(5.0)


def _inline(fn, *args):
    return fn(*args)


class QueueEstimate:
    """The cloud's queueing delay as this edge sees it: an EWMA of the queue waits the server reports, fading
    with `half_life_s` while no reply comes, so that an edge that moved off a saturated cloud tries it again
    once the estimate has faded (it would otherwise never learn that the queue drained)."""

    def __init__(self, alpha: float = 0.3, half_life_s: float = 2.0, clock=time.monotonic) -> None:
        if not (0 < alpha <= 1 and half_life_s > 0):
            raise PlannerError(f"queue estimate needs 0 < alpha <= 1 and half_life_s > 0, got {alpha}, {half_life_s}")
        self.alpha, self.half_life_s, self.clock = float(alpha), float(half_life_s), clock
        self.samples = 0
        self._ms, self._at = 0.0, clock()

    @property
    def ms(self) -> float:
        """The current estimate (ms), faded since the last sample."""
        return self._ms * 0.5 ** ((self.clock() - self._at) / self.half_life_s)

    def observe(self, queue_ms: float) -> None:
        self._ms = self.alpha * max(0.0, float(queue_ms)) + (1.0 - self.alpha) * self.ms
        self._at = self.clock()
        self.samples += 1


# ------------------------------------------------------------------------------------------------ the client

def _live(link, rtt, estimator: str) -> LiveEstimate:
    """The starting bandwidth estimate from a bandwidth, a constant/trace link or a LiveEstimate."""
    if isinstance(link, LiveEstimate):
        return link
    if isinstance(link, ConstantLink):
        return LiveEstimate(link.bandwidth_bps, link.rtt_ms if rtt is None else rtt, method=estimator)
    if isinstance(link, TraceLink):
        return LiveEstimate(float(link.bandwidth_at(0.0)) or link.mean_bps, link.rtt_ms if rtt is None else rtt,
                            method=estimator)
    return LiveEstimate(parse_bandwidth(link), "20ms" if rtt is None else rtt, method=estimator)


class EdgeClient:
    """Runs inputs through the planned split: plan -> head -> encode -> send -> result, with re-planning and
    local fallback. One client serves one caller at a time (use one per concurrent stream)."""

    def __init__(self, model, edge_profile: Profile | str | Path | None = None,
                 cloud_profile: Profile | str | Path | None = None, *, cloud: str | CloudClient = "127.0.0.1:7000",
                 link="10mbit", rtt: str | float | None = None, max_loss: float | None = DEFAULT_MAX_LOSS,
                 shaper=None, token: str | None = None, timeout: float = 5.0, edge_cpu_quota: float | None = None,
                 estimator: str = "harmonic", replan: bool = True, payload: str = "mean", backoff_s: float = 0.5,
                 backoff_max_s: float = 10.0, min_sample_ms: float = 10.0, load_aware: bool = True,
                 queue_alpha: float = 0.3, queue_half_life_s: float = 2.0, warm: bool = True,
                 edge_runtime: str = "torch", onnx: str | Path | None = None) -> None:
        from planner.pipeline import SplitPipeline

        name = model.name if isinstance(model, SplitPipeline) else str(model)
        if edge_profile is None or cloud_profile is None:
            e, c = default_profiles(name, edge_cpu_quota)
            edge_profile, cloud_profile = edge_profile or e, cloud_profile or c
        self.edge_profile, self.cloud_profile = _profile(edge_profile), _profile(cloud_profile)
        self.pipeline = model if isinstance(model, SplitPipeline) else pipeline_for_profile(name, self.edge_profile)
        if edge_runtime != self.pipeline.runtime or onnx is not None:  # ONNX Runtime: planner.onnx_runtime
            from planner.onnx_runtime import runtime_pipeline

            self.pipeline = runtime_pipeline(self.pipeline, edge_runtime, onnx)
        self.candidates: CandidateSet = prepare(self.edge_profile, self.cloud_profile, payload=payload)
        _check_match(self.pipeline, self.candidates)
        self.max_loss = max_loss
        self.estimate = _live(link, rtt, estimator)
        self.start_link = self.estimate.describe()
        self.replan = replan
        self.load_aware = load_aware
        self.queue = QueueEstimate(queue_alpha, queue_half_life_s)
        self.timeout = float(timeout)
        self.min_sample_ms = float(min_sample_ms)
        self.client = cloud if isinstance(cloud, CloudClient) else CloudClient(
            cloud, token=token, timeout=timeout, shaper=shaper, backoff_s=backoff_s, backoff_max_s=backoff_max_s)
        self.edge_cpu_quota = edge_cpu_quota
        self._compute = _QuotaThread(edge_cpu_quota) if edge_cpu_quota else _inline
        self._last_plan = None
        self._lock = threading.Lock()
        if warm:
            self.warm()

    # -------------------------------------------------------------------------------------- planning

    def warm(self) -> None:
        """Split the model at every candidate cut and run the whole model once, so no request pays for set-up."""
        for cut in dict.fromkeys(self.candidates.cut):
            if cut not in ("input", "output"):
                self.pipeline.split(cut)
        import torch

        self._compute(self.pipeline.edge_local, torch.zeros(1, *self.pipeline.input_shape))

    def plan(self):
        """The plan for the next request on the current bandwidth estimate (and cloud queue, when load-aware)."""
        wait = self.queue.ms if self.load_aware else 0.0
        return self.candidates.solve(self.estimate, max_loss=self.max_loss, cloud_wait_ms=wait)

    def index_of(self, choice) -> int:
        """Candidate index of a forced choice: 'edge-only', 'cloud-only', (cut, bits) or (cut, None, dtype)."""
        cs = self.candidates
        if isinstance(choice, str):
            choice = {"edge-only": ("output", None), "cloud-only": ("input", None)}.get(choice, (choice, None))
        cut, bits, *rest = tuple(choice)
        dtype = rest[0] if rest else ("float32" if bits is None and cut not in ("input", "output") else None)
        for i in range(len(cs)):
            if cs.cut[i] == cut and cs.bits[i] == bits and (cs.kind[i] != "raw" or cs.dtype[i] == dtype):
                return i
        raise SolveError(f"no candidate {candidate_label('raw' if bits is None else 'split', cut, bits, dtype)!r} "
                         f"in the profiles {self.edge_profile.name} / {self.cloud_profile.name}")

    # -------------------------------------------------------------------------------------- requests

    def infer(self, raw, *, index: int = 0, label: int | None = None, choice=None) -> Result:
        """One input (a batch of one raw sample): planned (or the forced `choice`), run, measured."""
        with self._lock:
            return self._infer(raw, index, label, choice)

    def _infer(self, raw, index: int, label: int | None, choice) -> Result:
        t0 = time.perf_counter()
        bandwidth = self.estimate.bandwidth_bps
        try:
            if choice is None and not self.replan and self._last_plan is not None:
                plan = self._last_plan  # static planning: the first plan for every request
            else:
                plan = self._last_plan = self.plan()
            i = plan.index if choice is None else self.index_of(choice)
        except PlannerError as exc:
            return self._local(raw, index, label, t0, None, None, f"planning failed: {exc}", bandwidth)
        cs = plan.candidate_set
        kind, cut, bits, dtype = cs.kind[i], cs.cut[i], cs.bits[i], cs.dtype[i]
        predicted = float(plan.columns["total"][i])
        if kind == "edge-only":
            return self._local(raw, index, label, t0, predicted, None, None, bandwidth)
        planned = candidate_label(kind, cut, bits, dtype)
        if not self.client.available():
            return self._local(raw, index, label, t0, self._edge_only_ms(plan), planned,
                               f"cloud backing off for {self.client.backoff_remaining_s():.2f} s", bandwidth)
        t_edge = time.perf_counter()
        try:
            payload, st = self._compute(self.pipeline.edge_encode, raw, cut, bits, dtype or "float32")
        except PlannerError as exc:
            return self._error(index, label, t0, kind, cut, bits, dtype, predicted, f"edge encode failed: {exc}")
        edge_ms = (time.perf_counter() - t_edge) * 1000.0 - st.encode_ms  # as the caller waited (quota included)
        transfer_pred = float(plan.columns["transfer"][i])
        self.client.timeout = max(self.timeout, 4.0 * transfer_pred / 1000.0 + 1.0)
        sent = time.perf_counter()
        try:
            reply = self.client.infer(self.pipeline.name, payload, request_id=index + 1)
        except (CloudUnavailable, ServerError) as exc:
            if isinstance(exc.__cause__, TimeoutError):
                # the payload could not cross within the timeout: an upper bound on the bandwidth; learn it, or
                # every later plan repeats the same payload (a shaped link gives up at once, not at the deadline)
                waited_ms = max((time.perf_counter() - sent) * 1000.0, self.client.timeout * 1000.0)
                self.estimate.observe(len(payload), waited_ms)
            return self._local(raw, index, label, t0, self._edge_only_ms(plan), planned, str(exc), bandwidth)
        self._observe(reply)
        self.queue.observe(reply.queue_wait_ms)
        scores = np.asarray(reply.scores)
        return Result(index=index, prediction=int(scores.reshape(scores.shape[0], -1)[0].argmax()), label=label,
                      cut=cut, bits=bits, kind=kind, dtype=dtype, predicted_ms=predicted,
                      measured_ms=(time.perf_counter() - t0) * 1000.0, edge_ms=edge_ms, encode_ms=st.encode_ms,
                      transfer_ms=reply.network_ms, server_decode_ms=reply.decode_ms, server_tail_ms=reply.tail_ms,
                      queue_wait_ms=reply.queue_wait_ms, connect_ms=reply.connect_ms,
                      request_bytes=reply.request_bytes, reply_bytes=reply.reply_bytes, bandwidth_bps=bandwidth,
                      scores=scores)

    @staticmethod
    def _edge_only_ms(plan) -> float:
        return float(plan.columns["total"][plan.candidate_set.kind.index("edge-only")])

    def _observe(self, reply) -> None:
        """Fold one exchange into the bandwidth estimate. Transfers shorter than `min_sample_ms` are dominated by
        fixed per-exchange costs (a few ms of event loop, threads and sleeps on a loaded host, which a
        bytes/time sample would read as a slower link): they may only raise the estimate, never lower it."""
        nbytes = reply.request_bytes + reply.reply_bytes
        elapsed = reply.network_ms - self.estimate.rtt_ms
        if elapsed >= self.min_sample_ms:
            self.estimate.observe(nbytes, elapsed)
        elif nbytes * 8000.0 / self.min_sample_ms > self.estimate.bandwidth_bps:
            self.estimate.observe(nbytes, self.min_sample_ms)

    def _local(self, raw, index, label, t0, predicted, planned, reason, bandwidth) -> Result:
        """Edge-only: by plan (reason None) or as the fallback for `planned`."""
        t_edge = time.perf_counter()
        try:
            scores, _ = self._compute(self.pipeline.edge_local, raw)
        except Exception as exc:  # noqa: BLE001 - the input gets an explicit error instead of being lost
            return self._error(index, label, t0, "edge-only", "output", None, None, predicted,
                               f"edge-only compute failed ({type(exc).__name__}: {exc})"
                               + (f" after: {reason}" if reason else ""))
        edge_ms = (time.perf_counter() - t_edge) * 1000.0
        scores = scores.numpy()
        return Result(index=index, prediction=int(scores.reshape(scores.shape[0], -1)[0].argmax()), label=label,
                      cut="output", bits=None, kind="edge-only", predicted_ms=predicted,
                      measured_ms=(time.perf_counter() - t0) * 1000.0, edge_ms=edge_ms, fallback=reason is not None, planned=planned, fallback_reason=reason, bandwidth_bps=bandwidth,
                      scores=scores)

    @staticmethod
    def _error(index, label, t0, kind, cut, bits, dtype, predicted, message) -> Result:
        return Result(index=index, prediction=None, label=label, cut=cut, bits=bits, kind=kind, dtype=dtype,
                      predicted_ms=predicted, measured_ms=(time.perf_counter() - t0) * 1000.0, error=message)

    def run(self, inputs, labels=None, *, choice=None, progress: bool = False, start_index: int = 0) -> RunReport:
        """Every input in order, one request each; a RunReport of all results."""
        samples = _samples(inputs)
        labels = None if labels is None else [None if y is None else int(y) for y in labels]
        if labels is not None and len(labels) != len(samples):
            raise PlannerError(f"{len(samples)} inputs but {len(labels)} labels")
        it = range(len(samples))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"run {self.pipeline.name}", unit="req")
        t0 = time.perf_counter()
        results = [self.infer(samples[k], index=start_index + k, label=None if labels is None else labels[k],
                              choice=choice) for k in it]
        return self.report(results, time.perf_counter() - t0)

    def report(self, results: list[Result], wall_s: float = 0.0) -> RunReport:
        return RunReport(results, self.pipeline.name, self.edge_profile.name, self.cloud_profile.name,
                         dict(self.start_link), self.estimate.bandwidth_bps, wall_s)

    def close(self) -> None:
        self.client.close()
        if isinstance(self._compute, _QuotaThread):
            self._compute.close()

    def __enter__(self) -> EdgeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ helpers

def pipeline_for_profile(model: str, edge_profile: Profile):
    """The zoo pipeline with the autoencoder the profile was measured with (checked by its id)."""
    from planner.pipeline import SplitPipeline
    from planner.runtime.handlers import autoencoder_kind

    if edge_profile.model != model:
        raise ProfileError(f"profile {edge_profile.name} is of model {edge_profile.model!r}, not {model!r}")
    return SplitPipeline.from_zoo(model, autoencoder_kind(edge_profile.autoencoder))


def _check_match(pipeline, cs: CandidateSet) -> None:
    """The profiles must describe this pipeline: same model, same autoencoder weights, known cuts and bits."""
    edge = cs.edge
    if edge.model != pipeline.name:
        raise ProfileError(f"profile {edge.name} is of model {edge.model!r}, but the pipeline runs {pipeline.name!r}")
    if edge.autoencoder != pipeline.ae_id:
        raise ProfileError(f"profile {edge.name} was measured with autoencoder {edge.autoencoder!r}, but the "
                           f"pipeline has {pipeline.ae_id!r}; re-profile with the autoencoder you deploy")
    for cut, bits in dict.fromkeys(zip(cs.cut, cs.bits, strict=True)):
        if cut not in ("input", "output"):
            try:
                pipeline.check(cut, bits)
            except PlannerError as exc:
                raise ProfileError(f"profile {edge.name} lists candidate {cut!r} at bits {bits} that this "
                                   f"pipeline cannot run: {exc}") from None


def _samples(inputs) -> list:
    """Inputs as a list of batches of one: an array/tensor batched along dim 0, or a sequence of samples."""
    if hasattr(inputs, "shape") and hasattr(inputs, "__getitem__"):
        return [inputs[k:k + 1] for k in range(inputs.shape[0])]
    out = []
    for x in inputs:
        out.append(x[None] if hasattr(x, "shape") else np.asarray(x)[None])
    return out


def run(inputs, model, cloud: str | CloudClient = "127.0.0.1:7000", edge_profile=None, cloud_profile=None,
        link="10mbit", max_loss: float | None = DEFAULT_MAX_LOSS, *, labels=None, progress: bool = False,
        **options) -> RunReport:
    """Run `inputs` (uint8 images, batched along dim 0) through `model` split between this device and `cloud`.

    Each input is planned on the live bandwidth estimate (starting at `link`), executed and measured; the
    RunReport holds per input the prediction, the candidate used and every stage's time. `options` go to
    `EdgeClient` (rtt, shaper, token, timeout, edge_cpu_quota, estimator, replan, load_aware, ...).
    """
    with EdgeClient(model, edge_profile, cloud_profile, cloud=cloud, link=link, max_loss=max_loss,
                    **options) as client:
        return client.run(inputs, labels, progress=progress)
