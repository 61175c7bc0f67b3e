"""One model split at its cuts, with the shared autoencoder, the raw quantizer and the codec: how every candidate
executes.

The profiler times these stages, the cloud server runs `cloud_*`, the edge client runs `edge_*`, so that
what is measured is what runs. Inputs are the raw samples the edge device holds (uint8 images for the
built-in models, normalized on whichever side runs the first layer); payloads are codec bytes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from planner.compress import codec
from planner.errors import CompressError, PartitionError
from planner.partition import INPUT, OUTPUT, Partitioner
from planner.tracegate import TRACE_GATE
from planner.types import AutoencoderKind, split_input_format


@dataclass
class Stages:
    """Measured wall time of each stage of one request, in ms (absent stages stay 0)."""

    head_ms: float = 0.0
    encode_ms: float = 0.0
    decode_ms: float = 0.0
    tail_ms: float = 0.0
    extra: dict = field(default_factory=dict)


def ms_since(t0: int) -> float:
    """Milliseconds since `t0`, a `time.perf_counter_ns()` reading."""
    return (time.perf_counter_ns() - t0) / 1e6


def _identity(x):
    return x


class SplitPipeline:
    """Heads, tails, the shared autoencoder and the training-free raw quantizer of one model, cached per cut."""

    runtime = "torch"  # what runs the stages (planner.onnx_runtime.OnnxPipeline: "onnxruntime")

    def __init__(self, model: torch.nn.Module, name: str, input_shape: tuple[int, ...], autoencoder=None,
                 preprocess: Callable | None = None, input_dtype: torch.dtype = torch.float32,
                 leaf_modules: tuple[type, ...] = (), weights_sha256: str | None = None,
                 partitioner: Partitioner | None = None, quantizer=None):
        self.model = model.eval()
        self.name = name
        self.input_shape = tuple(input_shape)
        self.input_dtype = input_dtype
        self.leaf_modules = tuple(leaf_modules)
        self.ae = autoencoder
        self.quantizer = quantizer  # compress.rawquant.RawQuantizer, or None (no training-free candidates)
        self.preprocess = preprocess or _identity
        if weights_sha256 is None:
            from planner.modelspec import state_sha256

            weights_sha256 = state_sha256(self.model)
        self.weights_sha256 = weights_sha256
        self.partitioner = partitioner or Partitioner(
            self.model, torch.zeros(1, *self.input_shape, dtype=input_dtype), leaf_modules)
        self.cuts = self.partitioner.cuts
        self._split: dict[str, tuple[torch.nn.Module, torch.nn.Module]] = {}
        self._split_lock = threading.Lock()

    @classmethod
    def from_model(cls, loaded, autoencoder=None, quantizer="auto") -> SplitPipeline:
        """Any model (a LoadedModel, see planner.modelspec) with an autoencoder: None / 'none', 'shared' or
        'independent' (the zoo's committed ones), a file written by `planner train-ae --out`, or a loaded one;
        and a raw quantizer: 'auto' (a zoo model's committed one), None, a file from `planner calibrate-quant`,
        or a loaded one."""
        from planner.compress.autoencoder import resolve_autoencoder
        from planner.compress.rawquant import resolve_quantizer

        ae = resolve_autoencoder(loaded, autoencoder)
        return cls(loaded.model, loaded.name, loaded.input_shape, ae, loaded.preprocess, loaded.input_dtype,
                   loaded.leaf_modules, loaded.weights_sha256, quantizer=resolve_quantizer(loaded, quantizer))

    @classmethod
    def from_zoo(cls, name: str, autoencoder: str | None = AutoencoderKind.SHARED,
                 weights=None) -> SplitPipeline:
        """A built-in model with its committed shared (or independent) autoencoder; None -> raw cuts only."""
        from planner.modelspec import load_model

        return cls.from_model(load_model(name, weights), autoencoder)

    @property
    def ae_id(self) -> str | None:
        return getattr(self.ae, "id", None)

    @property
    def quant_id(self) -> str | None:
        return getattr(self.quantizer, "id", None)

    def split(self, cut: str) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(head, tail) at `cut`, split once and cached (threads may ask at once)."""
        with self._split_lock:
            if cut not in self._split:
                self._split[cut] = self.partitioner.split(cut)
            return self._split[cut]

    def warm(self) -> None:
        """Split the model at every inner cut now, so no request pays for tracing."""
        for cut in self.cuts:
            if not cut.trivial:
                self.split(cut.id)

    def check(self, cut: str, bits: int | None, width: int | None = None, rawquant: bool = False) -> None:
        """Raise a clear error when (cut, bits, width) is not a candidate of this pipeline (`rawquant`: through
        the training-free raw quantizer instead of the autoencoder)."""
        self.partitioner.cut(cut)
        if bits is None:
            return
        coder, what = (self.quantizer, "raw quantizer") if rawquant else (self.ae, "autoencoder")
        if coder is None:
            raise CompressError(f"{self.name} has no {what} loaded: only raw cuts (bits=None) are possible"
                                if not rawquant else f"{self.name} has no raw-quantizer calibration loaded "
                                "(make one with `planner calibrate-quant`)")
        if cut not in coder.cuts:
            raise CompressError(f"the {what} does not serve cut {cut!r}; it serves {', '.join(coder.cuts)}")
        if bits not in coder.bits:
            raise CompressError(f"the {what} was not made for {bits} bits; it serves {coder.bits}")
        if width is not None:
            if rawquant:
                raise CompressError("the raw quantizer has no latent width")
            self.ae.spec(cut).width(width)

    def input_tensor(self, raw) -> torch.Tensor:
        """Raw samples (uint8 images or float tensors, batched) -> the model's input tensor."""
        from planner.modelspec import Preprocess

        if isinstance(self.preprocess, Preprocess):
            return self.preprocess(raw)
        if isinstance(raw, torch.Tensor) and raw.is_floating_point():
            return raw
        return self.preprocess(np.asarray(raw))

    def input_payload(self, raw, fmt: str | None = None, raw_dtype: str = "float32") -> bytes:
        """The cloud-only payload of raw samples: uint8 pixels as bytes (losslessly, or as JPEG/WebP files when
        `fmt` names a format such as 'jpeg90'), anything else as `raw_dtype`."""
        arr = raw.numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
        if fmt is not None:
            codec_name, quality = split_input_format(fmt, CompressError)
            return codec.encode(arr, INPUT, mode="uint8", lossless=codec_name, level=quality)
        return codec.encode(arr, INPUT, mode="uint8" if arr.dtype == np.uint8 else raw_dtype)

    def input_formats(self, formats) -> tuple[str, ...]:
        """The lossy input formats among `formats` ('jpeg90', ...) this model's raw samples can be sent as: all
        of them for uint8 images of 1 or 3 channels with the codec built into Pillow here, else none."""
        from planner.compress import imagecoding

        if not self.input_dtype.is_floating_point or len(self.input_shape) not in (2, 3):
            return ()
        if len(self.input_shape) == 3 and self.input_shape[0] not in (1, 3):
            return ()
        return tuple(f for f in formats if imagecoding.supported(split_input_format(f, CompressError)[0]))

    # -- edge side -----------------------------------------------------------------------------------
    def edge_local(self, raw) -> tuple[torch.Tensor, Stages]:
        """Edge-only: the whole model on the edge."""
        t0 = time.perf_counter_ns()
        with TRACE_GATE.running(), torch.inference_mode():
            scores = self.model(self.input_tensor(raw))
        return scores, Stages(head_ms=ms_since(t0))

    def edge_encode(self, raw, cut: str, bits: int | None, raw_dtype: str = "float32", width: int | None = None,
                    rawquant: bool = False, fmt: str | None = None) -> tuple[bytes, Stages]:
        """Run the head up to `cut` and encode what crosses: the autoencoder's codes at (`bits`, `width`; None:
        the widest), the raw quantizer's codes at `bits` (`rawquant`), or the raw feature/input (at the input cut:
        as JPEG/WebP files when `fmt` names a format such as 'jpeg90')."""
        if cut == OUTPUT:
            raise PartitionError("the 'output' cut is edge-only: use edge_local")
        self.check(cut, bits, width, rawquant)
        st = Stages()
        t0 = time.perf_counter_ns()
        if cut == INPUT:
            payload = self.input_payload(raw, fmt, raw_dtype)
            st.encode_ms = ms_since(t0)
            return payload, st
        if fmt is not None:
            raise CompressError(f"an input format ({fmt}) applies to the input cut (cloud-only), not to {cut!r}")
        head, _ = self.split(cut)
        with TRACE_GATE.running(), torch.inference_mode():
            feature = head(self.input_tensor(raw))
            st.head_ms = ms_since(t0)
            t0 = time.perf_counter_ns()
            if bits is None:
                payload = codec.encode(feature.numpy(), cut, mode=raw_dtype, lossless="none")
            elif rawquant:
                payload = codec.encode(self.quantizer.encode(feature, cut, bits).numpy(), cut, bits, rawquant=True)
            else:
                payload = codec.encode(self.ae.encode(feature, cut, bits, width).numpy(), cut, bits)
        st.encode_ms = ms_since(t0)
        return payload, st

    def check_shape(self, dec: codec.DecodedFeature) -> None:
        if dec.cut == INPUT:
            expected = self.input_shape
            ok = int(np.prod(dec.shape[1:])) == int(np.prod(expected))
        elif dec.mode == "codes" and dec.rawquant:
            expected = tuple(self.quantizer.latent_shape(dec.cut))
            ok = tuple(dec.shape[1:]) == expected
        elif dec.mode == "codes":
            widths = self.ae.widths(dec.cut)
            width = dec.shape[1] if len(dec.shape) > 1 and dec.shape[1] in widths else None
            expected = tuple(self.ae.latent_shape(dec.cut, width))
            ok = tuple(dec.shape[1:]) == expected
            if not ok:
                expected = f"(W, {', '.join(map(str, expected[1:]))}) with W one of {', '.join(map(str, widths))}"
        else:
            expected = self.partitioner.cut(dec.cut).shape
            ok = tuple(dec.shape[1:]) == tuple(expected)
        if not ok or len(dec.shape) < 2:
            raise CompressError(f"payload for cut {dec.cut!r} has shape {dec.shape}; expected (batch, *{expected})")

    # -- cloud side ----------------------------------------------------------------------------------
    def decode_payload(self, payload: bytes) -> codec.DecodedFeature:
        """Codec bytes -> the decoded feature, checked to be a candidate of this pipeline with the right shape."""
        dec = codec.decode(payload)
        if dec.cut == OUTPUT:
            raise PartitionError("a payload at the 'output' cut has nothing left to run on the cloud (edge-only)")
        self.check(dec.cut, dec.bits if dec.mode == "codes" else None, rawquant=dec.rawquant)
        self.check_shape(dec)
        return dec

    def payload_input(self, dec: codec.DecodedFeature) -> torch.Tensor:
        """The model's input tensor from a decoded 'input' payload (uint8 samples or a float input)."""
        return self.input_tensor(dec.array if dec.mode == "uint8" else dec.values())

    def cloud_decode(self, payload: bytes) -> tuple[torch.Tensor, Stages, codec.DecodedFeature]:
        """Decode a payload and run the rest of the model: the server's whole job for one request."""
        st = Stages()
        t0 = time.perf_counter_ns()
        dec = self.decode_payload(payload)
        with TRACE_GATE.running(), torch.inference_mode():
            if dec.cut == INPUT:
                x = self.payload_input(dec)
                st.decode_ms = ms_since(t0)
                t0 = time.perf_counter_ns()
                scores = self.model(x)
            else:
                if dec.mode == "codes":
                    coder = self.quantizer if dec.rawquant else self.ae
                    feature = coder.decode(dec.tensor(), dec.cut, dec.bits)
                else:
                    feature = torch.from_numpy(dec.values())
                st.decode_ms = ms_since(t0)
                t0 = time.perf_counter_ns()
                scores = self.split(dec.cut)[1](feature)
        st.tail_ms = ms_since(t0)
        return scores, st, dec
