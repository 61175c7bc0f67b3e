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
from pathlib import Path

import numpy as np

from planner.config import DEFAULT_CLOUD, DEFAULT_MAX_LOSS
from planner.errors import PlannerError, ProfileError
from planner.profile.schema import Profile
from planner.profile.store import find_profiles
from planner.runtime.client import CloudClient, CloudUnavailable, ServerError
from planner.runtime.compute import QuotaThread, inline
from planner.runtime.estimates import QueueEstimate, live_estimate
from planner.runtime.options import EdgeOptions
from planner.runtime.results import Result, RunReport
from planner.solve import CandidateSet, prepare
from planner.types import OUTPUT_CUT, CandidateKind, CandidateSpec

__all__ = ["EdgeClient", "EdgeOptions", "Result", "RunReport", "run"]


def _profile(p: Profile | str | Path) -> Profile:
    return p if isinstance(p, Profile) else Profile.load(p)


class EdgeClient:
    """Runs inputs through the planned split: plan -> head -> encode -> send -> result, with re-planning and
    local fallback. One client serves one caller at a time (use one per concurrent stream)."""

    def __init__(self, model, edge_profile: Profile | str | Path | None = None,
                 cloud_profile: Profile | str | Path | None = None, *, cloud: str | CloudClient = DEFAULT_CLOUD,
                 shaper=None, options: EdgeOptions | None = None, **overrides) -> None:
        from planner.pipeline import SplitPipeline

        o = self.options = (options or EdgeOptions()).updated(**overrides)
        name = model.name if isinstance(model, SplitPipeline) else str(model)
        if edge_profile is None or cloud_profile is None:
            e, c = find_profiles(name, quota=o.edge_cpu_quota)
            edge_profile, cloud_profile = edge_profile or e, cloud_profile or c
        self.edge_profile, self.cloud_profile = _profile(edge_profile), _profile(cloud_profile)
        self.pipeline = model if isinstance(model, SplitPipeline) else pipeline_for_profile(name, self.edge_profile)
        if o.edge_runtime != self.pipeline.runtime or o.onnx is not None:  # ONNX Runtime: planner.onnx_runtime
            from planner.onnx_runtime import runtime_pipeline

            self.pipeline = runtime_pipeline(self.pipeline, o.edge_runtime, o.onnx)
        self.candidates: CandidateSet = prepare(self.edge_profile, self.cloud_profile, payload=o.payload)
        check_match(self.pipeline, self.candidates)
        self.max_loss = o.max_loss
        self.estimate = live_estimate(o.link, o.rtt, o.estimator)
        self.start_link = self.estimate.describe()
        self.replan, self.load_aware = o.replan, o.load_aware
        self.queue = QueueEstimate(o.queue_alpha, o.queue_half_life_s)
        self.timeout = float(o.timeout)
        self.min_sample_ms = float(o.min_sample_ms)
        self.client = cloud if isinstance(cloud, CloudClient) else CloudClient(
            cloud, token=o.token, timeout=o.timeout, shaper=shaper, backoff_s=o.backoff_s,
            backoff_max_s=o.backoff_max_s)
        self.edge_cpu_quota = o.edge_cpu_quota
        self._compute = QuotaThread(o.edge_cpu_quota) if o.edge_cpu_quota else inline
        self._last_plan = None
        self._lock = threading.Lock()
        if o.warm:
            self.warm()

    # -------------------------------------------------------------------------------------- planning

    def warm(self) -> None:
        """Split the model at every candidate cut and run the whole model once, so no request pays for set-up."""
        for spec in self.candidates.specs:
            if not spec.is_end:
                self.pipeline.split(spec.cut)
        import torch

        self._compute(self.pipeline.edge_local, torch.zeros(1, *self.pipeline.input_shape))

    def plan(self):
        """The plan for the next request on the current bandwidth estimate (and cloud queue, when load-aware)."""
        wait = self.queue.ms if self.load_aware else 0.0
        return self.candidates.solve(self.estimate, max_loss=self.max_loss, cloud_wait_ms=wait)

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
        spec = plan.candidate_set.specs[i]
        kind, cut, bits, dtype = spec.kind, spec.cut, spec.bits, spec.dtype
        predicted = plan.predicted_ms_of(i)
        if not spec.remote:
            return self._local(raw, index, label, t0, predicted, None, None, bandwidth)
        planned = spec.label
        if not self.client.available():
            return self._local(raw, index, label, t0, self._edge_only_ms(plan), planned,
                               f"cloud backing off for {self.client.backoff_remaining_s():.2f} s", bandwidth)
        t_edge = time.perf_counter()
        try:
            payload, st = self._compute(self.pipeline.edge_encode, raw, cut, bits, dtype or "float32")
        except PlannerError as exc:
            return self._error(index, label, t0, kind, cut, bits, dtype, predicted, f"edge encode failed: {exc}")
        edge_ms = (time.perf_counter() - t_edge) * 1000.0 - st.encode_ms  # as the caller waited (quota included)
        transfer_pred = plan.transfer_ms_of(i)
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
        return plan.predicted_ms_of(CandidateSpec.edge_only())

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
            return self._error(index, label, t0, CandidateKind.EDGE_ONLY, OUTPUT_CUT, None, None, predicted,
                               f"edge-only compute failed ({type(exc).__name__}: {exc})"
                               + (f" after: {reason}" if reason else ""))
        edge_ms = (time.perf_counter() - t_edge) * 1000.0
        scores = scores.numpy()
        return Result(index=index, prediction=int(scores.reshape(scores.shape[0], -1)[0].argmax()), label=label,
                      cut=OUTPUT_CUT, bits=None, kind=CandidateKind.EDGE_ONLY, predicted_ms=predicted,
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
        if isinstance(self._compute, QuotaThread):
            self._compute.close()

    def __enter__(self) -> EdgeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ helpers

def pipeline_for_profile(model: str, edge_profile: Profile):
    """The zoo pipeline with the committed autoencoder the profile was measured with (found by its id)."""
    from planner.pipeline import SplitPipeline
    from planner.runtime.handlers import committed_kind

    if edge_profile.model != model:
        raise ProfileError(f"profile {edge_profile.name} is of model {edge_profile.model!r}, not {model!r}")
    return SplitPipeline.from_zoo(model, committed_kind(model, edge_profile.autoencoder))


def check_match(pipeline, cs: CandidateSet) -> None:
    """The profiles must describe this pipeline: same model, same autoencoder weights, known cuts and bits."""
    edge = cs.edge
    if edge.model != pipeline.name:
        raise ProfileError(f"profile {edge.name} is of model {edge.model!r}, but the pipeline runs {pipeline.name!r}")
    if edge.autoencoder != pipeline.ae_id:
        raise ProfileError(f"profile {edge.name} was measured with autoencoder {edge.autoencoder!r}, but the "
                           f"pipeline has {pipeline.ae_id!r}; re-profile with the autoencoder you deploy")
    for spec in dict.fromkeys(cs.specs):
        if not spec.is_end:
            try:
                pipeline.check(spec.cut, spec.bits)
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
