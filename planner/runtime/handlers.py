"""Cloud-side compute handlers: what `planner serve` runs for each INFER frame.

A handler decodes the payload and runs the rest of the model with `SplitPipeline.cloud_decode`, the same
code the profiler times on the cloud, so that the server's `decode_ms` / `tail_ms` are what a cloud
profile predicts. Heads/tails are split once at start-up: the server's worker threads then only read them.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from planner.errors import CompressError

log = logging.getLogger("planner.runtime.handlers")

AUTOENCODER_KINDS = ("shared", "independent")


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

    def warm(self) -> None:
        """Split the model at every inner cut now (and open its graphs), so no request pays for set-up and no two
        threads race on it."""
        with self._lock:
            self.pipeline.warm()

    def infer(self, payload: bytes) -> tuple[np.ndarray, dict[str, float]]:
        """One request: codec bytes -> class scores and the server-side stage times (ms)."""
        scores, stages, _ = self.pipeline.cloud_decode(payload)
        return scores.numpy(), {"decode_ms": stages.decode_ms, "tail_ms": stages.tail_ms}

    def __repr__(self) -> str:
        return f"CloudHandler({self.model}, autoencoder={self.autoencoder})"


def autoencoder_kind(ae_id: str | None) -> str | None:
    """The kind ("shared"/"independent") named in an autoencoder id '<model>/<kind>@<hash>'; None for None."""
    if ae_id is None:
        return None
    kind = ae_id.rpartition("/")[2].partition("@")[0]
    if kind not in AUTOENCODER_KINDS:
        raise CompressError(f"cannot tell the autoencoder kind from its id {ae_id!r} "
                            f"(expected '<model>/<{'|'.join(AUTOENCODER_KINDS)}>@<hash>')")
    return kind


def make_cloud_handler(model_name: str, autoencoder: str | None = "shared", weights=None, *, runtime: str = "torch",
                       onnx=None) -> CloudHandler:
    """The handler for a zoo model with its committed autoencoder ("shared", "independent", or None = raw only),
    run by PyTorch or (`runtime` "onnxruntime") by ONNX Runtime on the export folder `onnx`."""
    from planner.onnx_runtime import runtime_pipeline
    from planner.pipeline import SplitPipeline

    if autoencoder is not None and autoencoder not in AUTOENCODER_KINDS:
        raise CompressError(f"unknown autoencoder {autoencoder!r}: use {', '.join(AUTOENCODER_KINDS)} or None")
    pipeline = SplitPipeline.from_zoo(model_name, autoencoder, weights=weights)
    handler = CloudHandler(runtime_pipeline(pipeline, runtime, onnx))
    log.info("handler ready: %r", handler)
    return handler
