"""The edge side of split inference: plan each request, run the head and encoder, send, and fall back locally.

`EdgeClient` holds the model's heads and the shared encoder (a `SplitPipeline`), the two device profiles,
a live bandwidth estimate and a `CloudClient`. Per request it solves for the fastest (cut, bits) on the
current estimate, runs the edge part, sends the payload, and folds the measured transfer into the estimate,
so the next request is planned on what the link just did. It also keeps an estimate of the cloud's queueing
delay from the waits the server reports and (`load_aware`) adds it to every candidate that uses the cloud, so a
saturated cloud moves the plan to edge-only (a constant wait leaves the order of the cloud candidates as it is).
When the cloud is unreachable, refuses or times out, the request is computed fully on the edge and marked
`fallback`; while the client backs off, requests go straight to the edge. Every input gets a `Result` (a
prediction, or an explicit `error`). Its options, with their defaults, are `EdgeOptions`; the results are in
`runtime.results`, the estimates in `runtime.estimates`, where the compute runs in `runtime.compute`.

`run(inputs, model=..., cloud=..., ...)` is the application entry point (`planner.run`).
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.candidates import Adjust
from planner.config import DEFAULT_CLOUD, DEFAULT_MAX_LOSS
from planner.energy import request_energy
from planner.errors import MismatchError, PlannerError, ProfileError
from planner.objectives import as_goal
from planner.profile.batching import BatchCurve
from planner.profile.schema import Profile
from planner.runtime.calibrate import Calibration, Explorer, GuardedEstimate
from planner.runtime.client import CloudClient, CloudUnavailable, ServerError, TLSMismatch
from planner.runtime.compute import QuotaThread, Stretched, inline
from planner.runtime.estimates import QueueEstimate, live_estimate
from planner.runtime.options import EdgeOptions
from planner.runtime.results import Result, RunReport
from planner.solve import CandidateSet, prepare
from planner.types import CandidateSpec

__all__ = ["EdgeClient", "EdgeOptions", "Result", "RunReport", "run"]


STALE_RATIO = 0.25  # a profile this far off what the device measures at start is reported stale


class StaleProfileWarning(UserWarning):
    """The edge profile's figures are far from what this device measures now."""


def planning_slowdown(edge_profile: Profile, edge_slowdown: float) -> float:
    """The factor to scale the edge profile by for a run stretched `edge_slowdown` times, less the slowdown the
    profile was already made for (`planner profile --edge-slowdown K` records it in its settings)."""
    made_for = float(edge_profile.settings.get("edge_slowdown") or 1.0)
    return float(edge_slowdown) / made_for


@dataclass(frozen=True)
class _Request:
    """One input on its way: the raw sample, its index and label, when it started and the bandwidth it is
    planned with."""

    raw: object
    index: int
    label: int | None
    t0: float
    bandwidth: float


def _top1(scores: np.ndarray) -> int:
    return int(scores.reshape(scores.shape[0], -1)[0].argmax())


class EdgeClient:
    """Runs inputs through the planned split: plan -> head -> encode -> send -> result, with re-planning and
    local fallback. One client serves one caller at a time (use one per concurrent stream)."""

    def __init__(self, model, edge_profile: Profile | str | Path | None = None,
                 cloud_profile: Profile | str | Path | None = None, *, cloud: str | CloudClient = DEFAULT_CLOUD,
                 shaper=None, options: EdgeOptions | None = None, **overrides) -> None:
        from planner.execution.factory import edge_pipeline, profiles
        from planner.modelspec import model_label

        o = self.options = (options or EdgeOptions()).updated(**overrides)  # checked before anything loads
        self.edge_profile, self.cloud_profile = profiles(model_label(model), edge_profile, cloud_profile,
                                                         o.edge_cpu_quota)
        self.pipeline = edge_pipeline(model, self.edge_profile, o)
        self.edge_slowdown = float(o.edge_slowdown)
        self.candidates: CandidateSet = prepare(self.edge_profile, self.cloud_profile, payload=o.payload,
                                                edge_slowdown=planning_slowdown(self.edge_profile, o.edge_slowdown))
        check_match(self.pipeline, self.candidates)
        self.max_loss = o.max_loss
        self.goal = as_goal(o.objective)
        self.power = self.goal.energy.power_of(self.edge_profile) if self.goal and self.goal.energy else None
        self.estimate = live_estimate(o.link, o.rtt, o.estimator)
        self.bandwidth = GuardedEstimate(self.estimate)
        self.start_link = self.estimate.describe()
        self.calibrate = o.calibrate
        self.calibration = Calibration(o.calibration_alpha, exchange_ms=self.candidates.exchange_ms)
        self.explorer = Explorer(o.explore if o.calibrate else 0.0)
        self.freshness: dict | None = None
        self.replan, self.load_aware = o.replan, o.load_aware
        self.queue = QueueEstimate(o.queue_alpha, o.queue_half_life_s)
        self.batch_curve = BatchCurve.of(self.cloud_profile)  # a batching cloud's compute per batch size, or None
        self.timeout = float(o.timeout)
        self.min_sample_ms = float(o.min_sample_ms)
        self.client = cloud if isinstance(cloud, CloudClient) else CloudClient(
            cloud, token=o.token, timeout=o.timeout, shaper=shaper, backoff_s=o.backoff_s,
            backoff_max_s=o.backoff_max_s, tls=o.tls)
        self._classes = tuple(self.pipeline.partitioner.cut("output").shape)  # what every reply must carry
        self.edge_cpu_quota = o.edge_cpu_quota
        self._compute = QuotaThread(o.edge_cpu_quota) if o.edge_cpu_quota else inline
        if self.edge_slowdown != 1.0:
            self._compute = Stretched(self.edge_slowdown, self._compute)
        self._last_plan = None
        self._probing = False  # the current request probes the other side (set when it is planned)
        self._lock = threading.Lock()
        if o.warm:
            self.warm()

    # -------------------------------------------------------------------------------------- planning

    def warm(self) -> None:
        """Split the model at every candidate cut and run the whole model once, so no request pays for set-up;
        then check the edge profile against this device (`check_freshness`)."""
        for spec in self.candidates.specs:
            if not spec.is_end:
                self.pipeline.split(spec.cut)
        import torch

        self._compute(self.pipeline.edge_local, torch.zeros(1, *self.pipeline.input_shape,
                                                            dtype=self.pipeline.input_dtype))
        if self.options.freshness_runs:
            self.check_freshness(self.options.freshness_runs)

    def check_freshness(self, runs: int = 5) -> dict:
        """Time the whole model `runs` times as requests run it (slowdown and quota included) against the edge
        profile; more than 25 % off warns with the figures, and calibration starts from the measured ratio."""
        import torch

        x = torch.zeros(1, *self.pipeline.input_shape, dtype=self.pipeline.input_dtype)
        times = []
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            self._compute(self.pipeline.edge_local, x)
            times.append((time.perf_counter() - t0) * 1000.0)
        profiled = float(self.candidates.edge_ms[self.candidates.index(CandidateSpec.edge_only())])
        measured = float(np.median(times))
        ratio = measured / profiled if profiled > 0 else 1.0
        self.freshness = {"profiled_ms": round(profiled, 4), "measured_ms": round(measured, 4),
                          "ratio": round(ratio, 4), "stale": abs(ratio - 1.0) > STALE_RATIO}
        if self.freshness["stale"]:
            warnings.warn(f"edge profile {self.edge_profile.name} predicts the whole model at {profiled:.3f} ms, "
                          f"measured here {measured:.3f} ms (x{ratio:.2f}); calibration starts from the measured "
                          f"ratio", StaleProfileWarning, stacklevel=3)
        if self.calibrate:
            self.calibration.edge.value = ratio
        return self.freshness

    def check_cloud(self) -> dict | None:
        """Connect and check the server runs this model with the identity this edge has (weights digest,
        autoencoder, raw quantizer): a MismatchError when it differs or (unless `strict_identity` is off) when the
        server does not announce one this edge has; a TLSMismatch when one side speaks TLS and the other not.
        None when the cloud cannot be reached (requests then fall back to the edge)."""
        try:
            info = self.client.connect()
        except TLSMismatch:
            raise
        except (CloudUnavailable, ServerError):
            return None
        mine = {"model": self.pipeline.name, **self.pipeline.identity()}
        same = "start both sides with the same --model/--weights/--autoencoder/--quantizer"
        for key, value in mine.items():
            if value is None:
                continue
            if key not in info:
                if self.options.strict_identity:
                    raise MismatchError(f"the cloud at {self.client.address} does not announce its {key} (this edge "
                                        f"has {value!r}): {same}, or pass strict_identity=False (--no-strict-identity)")
            elif info[key] != value:
                raise MismatchError(f"the cloud at {self.client.address} runs {key} {info[key]!r} but this edge has "
                                    f"{value!r}: {same}")
        return info

    def plan(self):
        """The plan for the next request on the current bandwidth estimate, cloud queue (when load-aware) and
        calibration (when on)."""
        wait = self.queue.ms if self.load_aware else 0.0
        adjust = self.calibration.adjust(wait) if self.calibrate else Adjust(cloud_wait_ms=wait)
        return self.candidates.solve(self.estimate, max_loss=self.max_loss, adjust=adjust, goal=self.goal)

    def _probe_of(self, plan) -> int:
        """The best feasible candidate on the other side of the chosen one (remote vs edge-only)."""
        cs, col = plan.candidate_set, plan.columns
        other = cs.remote != cs.remote[plan.index]
        return int(np.argmin(np.where(other & col["feasible"], col["total"], np.inf)))

    def index_of(self, choice: CandidateSpec | str | tuple) -> int:
        """Candidate index of a forced choice: a CandidateSpec, its name ('edge-only', 'relu_5@4', 'pool1@raw'),
        or a tuple (cut, bits) / (cut, None, dtype)."""
        if isinstance(choice, tuple):
            cut, bits, *rest = choice
            ends = {s.cut: s for s in (CandidateSpec.cloud_only(), CandidateSpec.edge_only())}
            choice = ends.get(cut) or (CandidateSpec.split(cut, bits) if bits is not None
                                       else CandidateSpec.raw(cut, rest[0] if rest and rest[0] else "float32"))
        return self.candidates.index(choice)

    # -------------------------------------------------------------------------------------- requests

    def infer(self, raw, *, index: int = 0, label: int | None = None, choice=None) -> Result:
        """One input (a batch of one raw sample): planned (or the forced `choice`), run, measured."""
        with self._lock:
            req = _Request(raw, index, label, time.perf_counter(), self.estimate.bandwidth_bps)
            try:
                result = self.step(req, choice)
            except Exception as exc:  # noqa: BLE001 - last resort: a bug must not lose the run's other results
                return self._local(req, None, None, f"internal error ({type(exc).__name__}: {exc})")
            if self.power is not None and result.error is None:
                result.energy_mj = request_energy(self.goal.energy, self.power, result, self.estimate.rtt_ms)
            return result

    def step(self, req: _Request, choice=None) -> Result:
        """One request, top to bottom: plan it (or take the forced choice; now and then probe the other side),
        run the edge part, exchange with the cloud, learn from the exchange's one record, answer. Whatever the
        cloud cannot do, the edge computes (a fallback that says why)."""
        self._probing = False
        try:
            plan, i = self._choose(choice)
        except PlannerError as exc:
            return self._local(req, None, None, f"planning failed: {exc}")
        spec, predicted = plan.candidate_set.specs[i], plan.predicted_ms_of(i)
        if not spec.remote:
            return self._local(req, predicted, None, None)
        if not self.client.available():
            return self._local(req, self._edge_only_ms(plan), spec.label, f"cloud backing off for "
                               f"{self.client.backoff_remaining_s():.2f} s after: {self.client.last_failure}")
        t_edge = time.perf_counter()
        try:
            payload, stages = self._compute(self.pipeline.edge_encode, req.raw, spec)
        except PlannerError as exc:
            return self._error(req, spec, predicted, f"edge encode failed: {exc}")
        edge_total_ms = (time.perf_counter() - t_edge) * 1000.0  # as the caller waited (slowdown, quota included)
        reply = self._exchange(req, payload, plan.transfer_ms_of(i))
        if isinstance(reply, str):  # why the cloud gave no answer
            return self._local(req, self._edge_only_ms(plan), spec.label, reply)
        measured = (time.perf_counter() - req.t0) * 1000.0
        self._learn(reply, plan.candidate_set, i, edge_total_ms, measured)
        scores = np.asarray(reply.scores)
        return Result.of(spec, index=req.index, prediction=_top1(scores), label=req.label, predicted_ms=predicted,
                         measured_ms=measured, edge_ms=edge_total_ms - stages.encode_ms, encode_ms=stages.encode_ms,
                         transfer_ms=reply.network_ms, server_decode_ms=reply.decode_ms,
                         server_tail_ms=reply.tail_ms, queue_wait_ms=reply.queue_wait_ms, connect_ms=reply.connect_ms,
                         request_bytes=reply.request_bytes, reply_bytes=reply.reply_bytes,
                         bandwidth_bps=req.bandwidth, probe=self._probing, scores=scores)

    def _choose(self, choice) -> tuple:
        """(plan, index): the forced choice, the first plan (static planning) or a new one; now and then a probe of
        the other side's best candidate instead (`self._probing` says so)."""
        if choice is None and not self.replan and self._last_plan is not None:
            plan = self._last_plan  # static planning: the first plan for every request
        else:
            plan = self._last_plan = self.plan()
        i = plan.index if choice is None else self.index_of(choice)
        self._probing = choice is None and self.explorer.due()
        return plan, self._probe_of(plan) if self._probing else i

    def _exchange(self, req: _Request, payload: bytes, transfer_pred_ms: float):
        """The cloud's Reply (one record of the exchange), or why there is none (a string)."""
        self.client.timeout = max(self.timeout, 4.0 * transfer_pred_ms / 1000.0 + 1.0)
        sent = time.perf_counter()
        try:
            return self.client.infer(self.pipeline.name, payload, request_id=req.index + 1, batch=len(req.raw),
                                     classes=self._classes)
        except (CloudUnavailable, ServerError) as exc:
            if isinstance(exc.__cause__, TimeoutError):
                # the payload could not cross within the timeout: an upper bound on the bandwidth; learn it, or
                # every later plan repeats the same payload (a shaped link gives up at once, not at the deadline)
                waited_ms = max((time.perf_counter() - sent) * 1000.0, self.client.timeout * 1000.0)
                self.estimate.observe(len(payload), waited_ms)
            return str(exc)

    def _learn(self, reply, cs: CandidateSet, i: int, edge_total_ms: float, measured_ms: float) -> None:
        """Fold one exchange's record into every estimate, each from the same figures (the reply's timings are
        bounded by what the edge waited, see `Reply.of`): its wire time into the bandwidth estimate, its queue
        wait into the queue estimate, its stages into the calibration."""
        self._observe(reply)
        # a request that shared a dynamic batch paid the batch's compute: beyond its own, that is load, like the queue
        # (bounded by the server's own time, as every figure of the reply)
        batched = min(self.batch_curve.excess_ms(cs.specs[i].cut, reply.batch_size), reply.server_ms) \
            if self.batch_curve else 0.0
        self.queue.observe(reply.queue_wait_ms + batched)
        self.calibration.observe(edge_ms=edge_total_ms, profiled_edge_ms=float(cs.edge_ms[i]), measured_ms=measured_ms,
                                 server_ms=reply.compute_ms, profiled_cloud_ms=float(cs.compute_cloud_ms[i]) + batched,
                                 network_ms=reply.network_ms, queue_ms=reply.held_ms, connect_ms=reply.connect_ms,
                                 edge_compute=not cs.specs[i].is_end)

    @staticmethod
    def _edge_only_ms(plan) -> float:
        return plan.predicted_ms_of(CandidateSpec.edge_only())

    def _observe(self, reply) -> None:
        """Fold one exchange into the bandwidth estimate: its wire time (`Reply.network_ms`, the one definition)
        less the RTT and the profiled per-exchange overhead is the bytes' time on the wire. Transfers shorter than
        `min_sample_ms` are dominated by what is left of fixed costs (event loop, threads and sleeps on a loaded
        host, which a bytes/time sample would read as a slower link): they may only raise the estimate, never
        lower it. A sample that says the link is far slower than believed waits for a second to confirm it."""
        nbytes = reply.request_bytes + reply.reply_bytes
        elapsed = reply.network_ms - self.estimate.rtt_ms - self.candidates.exchange_ms
        if elapsed >= self.min_sample_ms:
            self.bandwidth.observe(nbytes, elapsed)
        elif nbytes * 8000.0 / self.min_sample_ms > self.estimate.bandwidth_bps:
            self.bandwidth.observe(nbytes, self.min_sample_ms)

    def _local(self, req: _Request, predicted, planned, reason) -> Result:
        """Edge-only: by plan (reason None) or as the fallback for `planned`."""
        t_edge = time.perf_counter()
        try:
            scores, _ = self._compute(self.pipeline.edge_local, req.raw)
        except Exception as exc:  # noqa: BLE001 - the input gets an explicit error instead of being lost
            return self._error(req, CandidateSpec.edge_only(), predicted, f"edge-only compute failed "
                               f"({type(exc).__name__}: {exc})" + (f" after: {reason}" if reason else ""))
        edge_ms = (time.perf_counter() - t_edge) * 1000.0
        scores = scores.numpy()
        measured = (time.perf_counter() - req.t0) * 1000.0
        if reason is None:  # a fallback's time holds the failed exchange: not a measurement of edge-only
            cs = self.candidates
            self.calibration.observe(edge_ms=edge_ms, measured_ms=measured,
                                     profiled_edge_ms=float(cs.edge_ms[cs.index(CandidateSpec.edge_only())]))
        return Result.of(CandidateSpec.edge_only(), index=req.index, prediction=_top1(scores), label=req.label,
                         predicted_ms=predicted, measured_ms=measured, edge_ms=edge_ms, fallback=reason is not None,
                         planned=planned, fallback_reason=reason, bandwidth_bps=req.bandwidth,
                         probe=self._probing, scores=scores)

    @staticmethod
    def _error(req: _Request, spec: CandidateSpec, predicted, message: str) -> Result:
        return Result.of(spec, index=req.index, prediction=None, label=req.label, predicted_ms=predicted,
                         measured_ms=(time.perf_counter() - req.t0) * 1000.0, error=message)

    def run(self, inputs, labels=None, *, choice=None, progress: bool = False, start_index: int = 0) -> RunReport:
        """Every input in order, one request each (pinned to `choice`, else to the `plan` option, when given); a
        RunReport of all results."""
        choice = choice if choice is not None else self.options.plan
        if choice is not None:
            choice = self.candidates.specs[self.index_of(choice)]  # not a candidate: refused before any request
        samples = _samples(inputs)
        labels = None if labels is None else [None if y is None else int(y) for y in labels]
        if labels is not None and len(labels) != len(samples):
            raise PlannerError(f"{len(samples)} inputs but {len(labels)} labels")
        it = range(len(samples))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"run {self.pipeline.name}", unit="req")
        self.check_cloud()
        t0 = time.perf_counter()
        results = [self.infer(samples[k], index=start_index + k, label=None if labels is None else labels[k],
                              choice=choice) for k in it]
        return self.report(results, time.perf_counter() - t0)

    def report(self, results: list[Result], wall_s: float = 0.0) -> RunReport:
        return RunReport(results, self.pipeline.name, self.edge_profile.name, self.cloud_profile.name,
                         dict(self.start_link), self.estimate.bandwidth_bps, wall_s,
                         calibration=self.calibration.summary() if self.calibrate else None,
                         freshness=self.freshness, edge_slowdown=self.edge_slowdown)

    def close(self) -> None:
        self.client.close()
        close = getattr(self._compute, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> EdgeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ helpers

def check_match(pipeline, cs: CandidateSet) -> None:
    """The profiles must describe this pipeline: same model, same autoencoder weights, known cuts and bits."""
    edge = cs.edge
    if edge.model != pipeline.name:
        raise ProfileError(f"profile {edge.name} is of model {edge.model!r}, but the pipeline runs {pipeline.name!r}")
    if edge.autoencoder != pipeline.ae_id:
        raise ProfileError(f"profile {edge.name} was measured with autoencoder {edge.autoencoder!r}, but the "
                           f"pipeline has {pipeline.ae_id!r}; re-profile with the autoencoder you deploy")
    if edge.quantizer is not None and edge.quantizer != pipeline.quant_id:
        raise ProfileError(f"profile {edge.name} was measured with raw quantizer {edge.quantizer!r}, but the "
                           f"pipeline has {pipeline.quant_id!r}; re-profile with the calibration you deploy")
    for spec in dict.fromkeys(cs.specs):
        if not spec.is_end:
            try:
                pipeline.check(spec)
            except PlannerError as exc:
                raise ProfileError(f"profile {edge.name} lists candidate {spec.label!r} that this pipeline cannot "
                                   f"run: {exc}") from None


def _samples(inputs) -> list:
    """Inputs as a list of batches of one: an array/tensor batched along dim 0, or a sequence of samples."""
    if hasattr(inputs, "shape") and hasattr(inputs, "__getitem__"):
        return [inputs[k:k + 1] for k in range(inputs.shape[0])]
    out = []
    for x in inputs:
        out.append(x[None] if hasattr(x, "shape") else np.asarray(x)[None])
    return out


def run(inputs, model, cloud: str | CloudClient = DEFAULT_CLOUD, edge_profile=None, cloud_profile=None,
        link="10mbit", max_loss: float | None = DEFAULT_MAX_LOSS, *, labels=None, progress: bool = False,
        **options) -> RunReport:
    """Run `inputs` (uint8 images, batched along dim 0) through `model` split between this device and `cloud`.

    Each input is planned on the live bandwidth estimate (starting at `link`), executed and measured; the
    RunReport holds per input the prediction, the candidate used and every stage's time. `options` go to
    `EdgeClient`: `shaper`, or any field of `EdgeOptions` (rtt, token, timeout, edge_cpu_quota, estimator, ...).
    """
    with EdgeClient(model, edge_profile, cloud_profile, cloud=cloud, link=link, max_loss=max_loss,
                    **options) as client:
        return client.run(inputs, labels, progress=progress)
