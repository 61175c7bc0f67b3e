"""Serve the cloud half on Ray Serve: replicas (fixed, or autoscaled on ongoing requests) behind the same wire format.

The asyncio `CloudServer` stays the TCP front (framing, token, limits, error replies), so edge clients and
`planner.run()` work unchanged; its handler, `RayHandler`, forwards each payload to a Serve deployment whose
replicas load the model (shared decoder + tails) once each. The time between forwarding a payload and the
replica's answer, less the replica's compute, is Ray's queue and transport: it goes back as `queue_ms`, which the
server adds to the reply's queue wait and the load-aware edge plans with. Ray is imported lazily; without it a
PlannerError names the extra to install.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from planner.errors import PlannerError
from planner.extras import require
from planner.runtime.batching import BatchSettings
from planner.types import AutoencoderKind

log = logging.getLogger("planner.runtime.ray_backend")

DEPLOYMENT = "cloud"


def import_ray():
    """(ray, ray.serve), or a PlannerError naming the extra to install."""
    serve = require("ray", "the Ray backend")
    import ray

    return ray, serve


def parse_autoscale(text: str) -> tuple[int, int]:
    """'1:4' -> (1, 4): the least and the most replicas the autoscaler may run (the least may be 0)."""
    lo, sep, hi = str(text).partition(":")
    if not (sep and lo.strip().isdigit() and hi.strip().isdigit()) or not 0 <= int(lo) <= int(hi) or int(hi) < 1:
        raise PlannerError(f"bad autoscale range {text!r}: expected MIN:MAX replicas with 0 <= MIN <= MAX, MAX >= 1")
    return int(lo), int(hi)


class CloudReplica:
    """One Serve replica: the model's cloud handler, loaded once. It accepts up to `max_ongoing` requests (so Ray's
    router does not hold them back with its retry backoff) but computes one at a time, so that a busy replica shows
    as queueing (the wait for the lock), not as slower compute."""

    def __init__(self, model: str, autoencoder: str | None, weights, threads: int) -> None:
        import torch

        from planner.runtime.handlers import make_cloud_handler  # planner.execution.factory.cloud_pipeline

        torch.set_num_threads(threads)
        self.handler = make_cloud_handler(model, autoencoder, weights)
        self._lock = threading.Lock()

    def identity(self) -> dict:
        """The replica's identity (weights digest, autoencoder, quantizer), which the front announces."""
        return self.handler.identity()

    def __call__(self, payload: bytes) -> dict:
        with self._lock:
            t0 = time.perf_counter()
            try:
                scores, timings = self.handler.infer(payload)
            except PlannerError as exc:  # returned, not raised: the front re-raises it as is (a clear error reply)
                return {"error": exc}
            compute_ms = (time.perf_counter() - t0) * 1000.0
        return {"scores": scores, "timings": {**timings, "compute_ms": compute_ms}}


def batched_replica(max_batch_size: int, wait_s: float) -> type:
    """A CloudReplica whose calls Ray Serve groups (`@serve.batch`): concurrent payloads reach the handler's
    `infer_batch` together, decoder + tail once per candidate; each caller gets its own answer or error."""
    import asyncio

    _, serve = import_ray()

    class BatchedCloudReplica(CloudReplica):
        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=wait_s)
        async def __call__(self, payloads: list[bytes]) -> list[dict]:
            return await asyncio.to_thread(self._run, list(payloads))

        def _run(self, payloads: list[bytes]) -> list[dict]:
            with self._lock:
                t0 = time.perf_counter()
                results = self.handler.infer_batch(payloads)
                compute_ms = (time.perf_counter() - t0) * 1000.0
            return [{"error": r if isinstance(r, PlannerError) else PlannerError(f"internal error in the replica "
                                                                                 f"({type(r).__name__})")}
                    if isinstance(r, BaseException) else {"scores": r[0], "timings": {**r[1], "compute_ms": compute_ms}}
                    for r in results]

    return BatchedCloudReplica


class RayHandler:
    """A `CloudServer` handler that forwards every payload to the Ray Serve deployment."""

    def __init__(self, handle, model: str, timeout_s: float = 60.0, identity: dict | None = None) -> None:
        self.handle, self.model, self.timeout_s = handle, model, float(timeout_s)
        self._identity = dict(identity or {})

    def identity(self) -> dict:
        """What a replica said it runs (asked once at start): announced in WELCOME as the asyncio backend does."""
        return dict(self._identity)

    @staticmethod
    def batch_of(payload: bytes) -> int:
        """The batch the payload's header declares, so the front refuses a batch bomb before Ray sees it."""
        from planner.runtime.handlers import declared_batch

        return declared_batch(payload)

    def infer(self, payload: bytes):
        t0 = time.perf_counter()
        try:
            out = self.handle.remote(payload).result(timeout_s=self.timeout_s)
        except TimeoutError as exc:
            raise PlannerError(f"the Ray deployment did not answer within {self.timeout_s:g} s") from exc
        if "error" in out:
            raise out["error"]
        timings = dict(out["timings"])
        timings["queue_ms"] = max(0.0, (time.perf_counter() - t0) * 1000.0 - timings.pop("compute_ms"))
        return out["scores"], timings

    def __repr__(self) -> str:
        return f"RayHandler({self.model})"


@dataclass
class RayBackend:
    """`model`'s cloud half deployed on Ray Serve; `start()` returns the handler to give `CloudServer`.

    `replicas` fixed replicas, or `autoscale=(min, max)` scaled on ongoing requests (one per replica targeted:
    a replica computes one request at a time; up to `max_ongoing` wait in it). `address` None starts a local Ray instance (`num_cpus` of it),
    'auto' or 'ray://host:port' joins a running cluster (whose nodes need planner installed).
    """

    model: str
    autoencoder: str | None = AutoencoderKind.SHARED
    weights: str | None = None
    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    address: str | None = None
    num_cpus: int | None = None
    replica_cpus: float = 1.0
    max_ongoing: int = 32
    timeout_s: float = 60.0
    app: str = "planner"
    batching: BatchSettings | None = None  # dynamic batching in each replica (@serve.batch); None: off

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.replica_cpus <= 0 or self.max_ongoing < 1 or self.timeout_s <= 0:
            raise PlannerError("replicas, replica_cpus, max_ongoing and timeout_s must be positive")
        self._started_ray = self._deployed = False

    def deployment_options(self) -> dict:
        scale = ({"autoscaling_config": {"min_replicas": self.autoscale[0], "max_replicas": self.autoscale[1],
                                         "target_ongoing_requests": 1}}
                 if self.autoscale else {"num_replicas": self.replicas})
        return {"name": DEPLOYMENT, "max_ongoing_requests": self.max_ongoing,
                "ray_actor_options": {"num_cpus": self.replica_cpus},
                "max_constructor_retry_count": 1, **scale}  # a replica that cannot load the model fails fast

    def start(self) -> RayHandler:
        """Start (or join) Ray, deploy the replicas, wait until they are up; the handler to serve them."""
        ray, serve = import_ray()
        if not ray.is_initialized():
            local = self.address is None
            ray.init(address=self.address, num_cpus=self.num_cpus if local else None, include_dashboard=False)
            self._started_ray = True
        serve.start(proxy_location="Disabled")
        batching = self.batching if self.batching is not None and self.batching.enabled else None
        replica = (batched_replica(batching.max_inputs, batching.delay_ms / 1000.0) if batching else CloudReplica)
        deployment = serve.deployment(replica, **self.deployment_options())
        threads = max(1, int(self.replica_cpus))
        self._deployed = True
        handle = serve.run(deployment.bind(self.model, self.autoencoder, self.weights, threads), name=self.app,
                           route_prefix=None)
        log.info("deployed %s on Ray Serve (%s)", self.model,
                 f"autoscale {self.autoscale[0]}..{self.autoscale[1]}" if self.autoscale else f"{self.replicas} replicas")
        identity = handle.identity.remote().result(timeout_s=self.timeout_s)
        return RayHandler(handle, self.model, self.timeout_s, identity)

    def close(self) -> None:
        """Delete the deployment; shut Ray down when `start` started it."""
        if not (self._deployed or self._started_ray):
            return
        ray, serve = import_ray()
        if self._deployed and ray.is_initialized():
            with contextlib.suppress(Exception):
                serve.delete(self.app)
            self._deployed = False
        if self._started_ray:
            serve.shutdown()
            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> RayHandler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
