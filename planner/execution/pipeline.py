"""One model split at its cuts, with the shared autoencoder, the raw quantizer and the codec: how every candidate
executes. What crosses the link at a candidate is its coder's business (planner.execution.coders).

The profiler times these stages, the cloud server runs `cloud_*`, the edge client runs `edge_*`, so that
what is measured is what runs. Inputs are the raw samples the edge device holds (uint8 images for the
built-in models, normalized on whichever side runs the first layer); payloads are codec bytes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from planner.compress import codec
from planner.compress.entropy import Books
from planner.errors import PartitionError
from planner.execution.coders import Coder, coder_for, coder_of_payload
from planner.partition import INPUT, OUTPUT, Partitioner
from planner.tracegate import TRACE_GATE
from planner.types import AutoencoderKind, CandidateSpec

CLOUD_ONLY = CandidateSpec.cloud_only()


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

    runtime = "torch"  # what runs the stages (planner.execution.onnx_runtime.OnnxPipeline: "onnxruntime")

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
        self.quantizer = quantizer  # compress.clipquant.RawQuantizer, or None (no training-free candidates)
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
        self.device = torch.device("cpu")  # where the cloud side runs (see `to`)

    @classmethod
    def from_model(cls, loaded, autoencoder=None, quantizer="auto") -> SplitPipeline:
        """Any model (a LoadedModel, see planner.modelspec) with an autoencoder: None / 'none', 'shared' or
        'independent' (the zoo's committed ones), a file written by `planner train-ae --out`, or a loaded one;
        and a raw quantizer: 'auto' (a zoo model's committed one), None, a file from `planner calibrate-quant`,
        or a loaded one."""
        from planner.compress.clipquant import resolve_quantizer
        from planner.compress.zoo import resolve_autoencoder

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

    def identity(self) -> dict[str, str | None]:
        """What this pipeline runs, as every backend announces it in WELCOME and the edge checks it
        (`runtime.protocol.IDENTITY_KEYS`): the model's weights digest (`modelspec.state_sha256`), the autoencoder
        id and the raw-quantizer id (None: none loaded)."""
        return {"weights_sha256": self.weights_sha256, "autoencoder": self.ae_id, "quantizer": self.quant_id}

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

    def to(self, device) -> SplitPipeline:
        """Run the cloud side on `device` ('auto', 'cpu', 'cuda[:N]'): every cut is split first (splitting checks
        exactness on the CPU), then the model and its splits move there. Payloads are decoded from bytes and by
        their coder (the autoencoder's decoder, the quantizer) on the CPU; what they give crosses over to the tail,
        and scores come back to the CPU."""
        from planner.devices import resolve_device

        device = resolve_device(device)
        self.warm()
        self.model.to(device)
        with self._split_lock:
            for head, tail in self._split.values():
                head.to(device)
                tail.to(device)
        self.device = device
        return self

    def check(self, spec: CandidateSpec | str) -> CandidateSpec:
        """Raise a clear error unless `spec` (a CandidateSpec or its name, e.g. 'relu_5@4') is a candidate of this
        pipeline; return it as a CandidateSpec."""
        spec = as_spec(spec)
        self.partitioner.cut(spec.cut)
        if spec.remote:
            coder_for(spec).check(self, spec)
        return spec

    def input_tensor(self, raw) -> torch.Tensor:
        """Raw samples (uint8 images or float tensors, batched) -> the model's input tensor."""
        from planner.modelspec import Preprocess

        if isinstance(self.preprocess, Preprocess):
            return self.preprocess(raw)
        if isinstance(raw, torch.Tensor) and raw.is_floating_point():
            return raw
        return self.preprocess(np.asarray(raw))

    def input_payload(self, raw, fmt: str | None = None) -> bytes:
        """The cloud-only payload of raw samples: uint8 pixels as bytes, anything else as float32; or (`fmt`, e.g.
        'jpeg90') uint8 images as lossy JPEG/WebP files."""
        spec = CLOUD_ONLY if fmt is None else CandidateSpec.cloud_only(fmt)
        return coder_for(spec).encode(self, raw, spec)

    # -- edge side -----------------------------------------------------------------------------------
    def edge_local(self, raw) -> tuple[torch.Tensor, Stages]:
        """Edge-only: the whole model on the edge."""
        t0 = time.perf_counter_ns()
        with TRACE_GATE.running(), torch.inference_mode():
            scores = self.model(self.input_tensor(raw))
        return scores, Stages(head_ms=ms_since(t0))

    def edge_encode(self, raw, spec: CandidateSpec | str) -> tuple[bytes, Stages]:
        """Run the head up to the candidate's cut and encode what crosses with the candidate's coder."""
        spec = self.check(spec)
        if not spec.remote:
            raise PartitionError("the 'output' cut is edge-only: use edge_local")
        coder = coder_for(spec)
        st = Stages()
        t0 = time.perf_counter_ns()
        if spec.cut == INPUT:
            payload = coder.encode(self, raw, spec)
            st.encode_ms = ms_since(t0)
            return payload, st
        head, _ = self.split(spec.cut)
        with TRACE_GATE.running(), torch.inference_mode():
            feature = head(self.input_tensor(raw))
            st.head_ms = ms_since(t0)
            t0 = time.perf_counter_ns()
            payload = coder.encode(self, feature, spec)
        st.encode_ms = ms_since(t0)
        return payload, st

    def entropy_books(self) -> Books:
        """The entropy models this side holds (the autoencoder's and the raw quantizer's), looked up by tag."""
        return Books(getattr(self.ae, "entropy", None), getattr(self.quantizer, "entropy", None))

    # -- cloud side ----------------------------------------------------------------------------------
    def decode_payload(self, payload: bytes) -> tuple[codec.DecodedFeature, Coder]:
        """Codec bytes -> the decoded feature and the coder that made it, checked to be a candidate of this
        pipeline with the right shape."""
        dec = codec.decode(payload, entropy=self.entropy_books())
        if dec.cut == OUTPUT:
            raise PartitionError("a payload at the 'output' cut has nothing left to run on the cloud (edge-only)")
        self.partitioner.cut(dec.cut)
        coder = coder_of_payload(dec)
        coder.check_payload(self, dec)
        return dec, coder

    def payload_spec(self, dec: codec.DecodedFeature) -> CandidateSpec:
        """The candidate a decoded payload belongs to."""
        return coder_of_payload(dec).spec_of(dec, self)

    def cloud_decode(self, payload: bytes) -> tuple[torch.Tensor, Stages, codec.DecodedFeature]:
        """Decode a payload and run the rest of the model: the server's whole job for one request."""
        t0 = time.perf_counter_ns()
        dec, coder = self.decode_payload(payload)
        parse_ms = ms_since(t0)
        scores, st = self.cloud_run([dec], coder)
        st.decode_ms += parse_ms
        return scores, st, dec

    def cloud_run(self, decs: list[codec.DecodedFeature], coder) -> tuple[torch.Tensor, Stages]:
        """Decoder + tail once over decoded payloads of one candidate (the same `batch_key`), stacked along dim 0:
        one request, or a dynamic batch of them. Scores are on the CPU."""
        from planner.devices import synchronize

        st, dev = Stages(), self.device
        t0 = time.perf_counter_ns()
        dec = stack_decoded(decs)
        with TRACE_GATE.running(), torch.inference_mode():
            x = coder.decode(self, dec).to(dev)
            synchronize(dev)
            st.decode_ms = ms_since(t0)
            t0 = time.perf_counter_ns()
            scores = (self.model(x) if dec.cut == INPUT else self.split(dec.cut)[1](x)).cpu()
        st.tail_ms = ms_since(t0)
        return scores, st


def batch_key(dec: codec.DecodedFeature) -> tuple:
    """What decoded payloads must share to run through `cloud_run` together: cut, mode, coder, bits, scale, zero
    point, dtype and the shape past the batch dimension (the latent width is dim 1 of the codes)."""
    return (dec.cut, dec.mode, dec.coder_flag, dec.bits, dec.scale, dec.zero_point, str(dec.array.dtype),
            tuple(dec.array.shape[1:]), tuple(dec.shape[1:]))


def stack_decoded(decs: list[codec.DecodedFeature]) -> codec.DecodedFeature:
    """Decoded payloads of one `batch_key` as one, their arrays concatenated along dim 0."""
    if len(decs) == 1:
        return decs[0]
    return replace(decs[0], array=np.concatenate([d.array for d in decs]),
                   shape=(sum(d.shape[0] for d in decs), *decs[0].shape[1:]))


def as_spec(spec: CandidateSpec | str) -> CandidateSpec:
    """A CandidateSpec, or its name ('relu_5@4', 'pool1@raw', 'cloud-only') parsed."""
    return spec if isinstance(spec, CandidateSpec) else CandidateSpec.parse(spec)
