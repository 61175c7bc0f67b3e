"""Cloud-side compute handlers: what `planner serve` runs for each INFER frame.

A handler decodes the payload and runs the rest of the model with `SplitPipeline.cloud_decode`, the same
code the profiler times on the cloud, so that the server's `decode_ms` / `tail_ms` are what a cloud
profile predicts. Heads/tails are split once at start-up: the server's worker threads then only read them.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from planner.compress import codec
from planner.errors import PlannerError
from planner.execution.factory import cloud_pipeline, committed_kind
from planner.types import AutoencoderKind

__all__ = ["CloudHandler", "committed_kind", "declared_batch", "make_cloud_handler"]

log = logging.getLogger("planner.runtime.handlers")



class CloudHandler:
    """Decoder + tail of one model behind `CloudServer`: `infer(payload) -> (scores, {decode_ms, tail_ms})`."""

    def __init__(self, pipeline, *, warm: bool = True) -> None:
        self.pipeline = pipeline
        self.model = pipeline.name
        self._lock = threading.Lock()
        if warm:
            self.warm()

    @property
    def autoencoder(self) -> str | None:
        """The id of the autoencoder this server decodes with (None: raw features only)."""
        return self.pipeline.ae_id

    def identity(self) -> dict[str, str | None]:
        """What WELCOME announces and the edge checks: weights digest, autoencoder id, raw-quantizer id."""
        return self.pipeline.identity()

    def warm(self) -> None:
        """Split the model at every inner cut now (and open its graphs), so no request pays for set-up and no two
        threads race on it."""
        with self._lock:
            self.pipeline.warm()

    @staticmethod
    def batch_of(payload: bytes) -> int:
        """The batch a payload's header declares (nothing decoded): the server bounds it before any work."""
        return declared_batch(payload)

    def infer(self, payload: bytes) -> tuple[np.ndarray, dict[str, float]]:
        """One request: codec bytes -> class scores and the server-side stage times (ms)."""
        scores, stages, _ = self.pipeline.cloud_decode(payload)
        return scores.numpy(), {"decode_ms": stages.decode_ms, "tail_ms": stages.tail_ms}

    @property
    def device(self) -> str:
        return str(getattr(self.pipeline, "device", "cpu"))

    def infer_batch(self, payloads: list[bytes]) -> list:
        """A dynamic batch: each payload decoded on its own (a bad one fails alone), then decoder + tail once per
        group of the same candidate (`pipeline.batch_key`), the scores split back. Per payload (scores, {decode_ms,
        tail_ms, batch_size}) or its exception. A pipeline that cannot stack (ONNX Runtime) runs one at a time."""
        from planner.execution.pipeline import batch_key, ms_since

        if getattr(self.pipeline, "runtime", "torch") != "torch":
            return [self._one(p) for p in payloads]
        out: list = [None] * len(payloads)
        groups: dict[tuple, list] = {}
        for i, payload in enumerate(payloads):
            t0 = time.perf_counter_ns()
            try:
                dec, coder = self.pipeline.decode_payload(payload)
            except PlannerError as exc:
                out[i] = exc
                continue
            groups.setdefault(batch_key(dec), []).append((i, dec, coder, ms_since(t0)))
        for members in groups.values():
            try:
                scores, st = self.pipeline.cloud_run([dec for _, dec, _, _ in members], members[0][2])
            except Exception:  # noqa: BLE001 - one of them breaks the group: each runs alone, fails alone
                for i, *_ in members:
                    out[i] = self._one(payloads[i])
                continue
            size = int(scores.shape[0])
            parts = np.split(scores.numpy(), np.cumsum([dec.shape[0] for _, dec, _, _ in members])[:-1])
            for (i, _, _, parse_ms), part in zip(members, parts, strict=True):
                out[i] = (part, {"decode_ms": parse_ms + st.decode_ms, "tail_ms": st.tail_ms, "batch_size": size})
        return out

    def _one(self, payload: bytes):
        try:
            return self.infer(payload)
        except Exception as exc:  # noqa: BLE001 - returned: the server answers this request alone with it
            return exc

    def __repr__(self) -> str:
        return f"CloudHandler({self.model}, autoencoder={self.autoencoder}, device={self.device})"


def declared_batch(payload: bytes) -> int:
    """Dim 0 of the shape in a codec payload's header (its CRC pass skipped: decoding checks it later)."""
    return codec.read_header(payload, checksum=False).shape[0]


def make_cloud_handler(model, autoencoder: str | None = AutoencoderKind.SHARED, weights=None, *,
                       runtime: str = "torch", onnx=None, quantizer="auto", device="cpu") -> CloudHandler:
    """The handler for a model (a zoo name, or any model as a planner.modelspec.LoadedModel) with its
    autoencoder and raw quantizer, on `device` ('auto', 'cpu', 'cuda[:N]'; ONNX Runtime: the CPU), run by PyTorch or
    ONNX Runtime: `planner.execution.factory.cloud_pipeline`."""
    handler = CloudHandler(cloud_pipeline(model, autoencoder, weights, quantizer=quantizer, runtime=runtime, onnx=onnx,
                                          device=device))
    log.info("handler ready: %r", handler)
    return handler
