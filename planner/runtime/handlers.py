"""Cloud-side compute handlers: what `planner serve` runs for each INFER frame.

A handler decodes the payload and runs the rest of the model with `SplitPipeline.cloud_decode`, the same
code the profiler times on the cloud, so that the server's `decode_ms` / `tail_ms` are what a cloud
profile predicts. Heads/tails are split once at start-up: the server's worker threads then only read them.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from planner.compress import codec
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

    def __repr__(self) -> str:
        return f"CloudHandler({self.model}, autoencoder={self.autoencoder})"


def declared_batch(payload: bytes) -> int:
    """Dim 0 of the shape in a codec payload's header (its CRC pass skipped: decoding checks it later)."""
    return codec.read_header(payload, checksum=False).shape[0]


def make_cloud_handler(model, autoencoder: str | None = AutoencoderKind.SHARED, weights=None, *,
                       runtime: str = "torch", onnx=None, quantizer="auto") -> CloudHandler:
    """The handler for a model (a zoo name, or any model as a planner.modelspec.LoadedModel) with its
    autoencoder and raw quantizer, run by PyTorch or ONNX Runtime: `planner.execution.factory.cloud_pipeline`."""
    handler = CloudHandler(cloud_pipeline(model, autoencoder, weights, quantizer=quantizer, runtime=runtime, onnx=onnx))
    log.info("handler ready: %r", handler)
    return handler
