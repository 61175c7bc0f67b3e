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
from planner.types import AutoencoderKind

log = logging.getLogger("planner.runtime.handlers")

AUTOENCODER_KINDS = tuple(k.value for k in AutoencoderKind.trained())


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


def committed_kind(model: str, ae_id: str | None) -> AutoencoderKind | None:
    """Which committed autoencoder of a zoo model has this id (None for None): the one a profile was measured with."""
    from planner.compress.autoencoder import committed_id

    if ae_id is None:
        return None
    known = {}
    for kind in AutoencoderKind.trained():
        try:
            known[committed_id(model, kind)] = kind
        except CompressError:
            continue
    if ae_id not in known:
        raise CompressError(f"no committed autoencoder of {model!r} has the id {ae_id!r} (committed: "
                            f"{', '.join(known) or 'none'}); re-profile with the autoencoder you deploy, or pass it")
    return known[ae_id]


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
