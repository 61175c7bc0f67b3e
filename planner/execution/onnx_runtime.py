"""The split pipeline's edge and cloud stages run by ONNX Runtime from a `planner export` folder.

`OnnxPipeline` is a `SplitPipeline` whose `edge_local`, `edge_encode` and `cloud_decode` run the exported
graphs (CPU execution provider, intra-op threads fixed like torch's today, no spinning) and frame the same
codec bytes, so an `EdgeClient`, a `CloudHandler` and the profiler use it unchanged. The edge graph fuses
head + encoder + quantizer, so `edge_encode` reports the graph in `head_ms` and the codec in `encode_ms`; the
cloud graph fuses dequantize + decoder + tail, reported in `tail_ms` (`decode_ms`: the codec). A profile
measured with ONNX Runtime (`retime_profile`) keeps the profile's meaning: encode = edge graph - head graph,
decode = cloud graph - tail graph. onnxruntime is imported lazily (the `planner[onnx]` extra).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import torch

from planner.compress import codec
from planner.compress.quantize import levels
from planner.errors import ExportError, PlannerError
from planner.execution.coders import coder_for, coders
from planner.execution.onnx_export import check_manifest, load_manifest
from planner.execution.pipeline import SplitPipeline, Stages, as_spec, ms_since
from planner.partition import INPUT
from planner.types import CandidateSpec

RUNTIMES = ("torch", "onnxruntime")


def import_onnxruntime():
    """The onnxruntime module, or a clear error naming the extra (`planner[onnx]`)."""
    from planner.extras import require

    return require("onnx", "running the split in ONNX Runtime")


def session_options(threads: int):
    """CPU session options: `threads` intra-op threads, sequential graph, no busy-waiting, full optimization."""
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class Graphs:
    """The ONNX Runtime sessions of one export folder, each opened on first use (thread-safe)."""

    def __init__(self, folder: str | Path, threads: int):
        self.folder = Path(folder)
        self.threads = int(threads)
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()

    def session(self, rel: str):
        s = self._sessions.get(rel)
        if s is None:
            with self._lock:
                s = self._sessions.get(rel)
                if s is None:
                    ort = import_onnxruntime()
                    try:
                        s = ort.InferenceSession(str(self.folder / rel), session_options(self.threads),
                                                 providers=["CPUExecutionProvider"])
                    except Exception as exc:  # noqa: BLE001 - a broken graph file
                        raise ExportError(f"ONNX Runtime cannot load {self.folder / rel}: {exc}") from None
                    self._sessions[rel] = s
        return s

    def run(self, rel: str, feeds: dict) -> np.ndarray:
        """The first output of graph `rel` on `feeds`."""
        return self.session(rel).run(None, feeds)[0]


class OnnxPipeline(SplitPipeline):
    """A SplitPipeline whose stages run the graphs of a `planner export` folder in ONNX Runtime."""

    runtime = "onnxruntime"

    def __init__(self, base: SplitPipeline, folder: str | Path, threads: int | None = None):
        super().__init__(base.model, base.name, base.input_shape, base.ae, base.preprocess, base.input_dtype,
                         base.leaf_modules, base.weights_sha256, partitioner=base.partitioner,
                         quantizer=base.quantizer)
        self.folder = Path(folder)
        self.manifest = load_manifest(folder)
        check_manifest(self.manifest, base, folder)
        self.graphs = Graphs(folder, threads or torch.get_num_threads() or 1)

    @property
    def exported_cuts(self) -> list[str]:
        return list(self.manifest["cuts"])

    def graph(self, cut: str, kind: str, bits: int | None = None) -> str:
        """The file of the `kind` graph ("head", "tail", "edge", "cloud") of a cut, or a clear error."""
        entry = self.manifest["cuts"].get(cut)
        if entry is None:
            raise ExportError(f"the export in {self.folder} has no graphs for cut {cut!r} (exported: "
                              f"{', '.join(self.manifest['cuts']) or 'none'}); re-export with --cuts all")
        rel = entry.get(kind)
        if kind == "cloud" and rel is not None:
            rel = rel.get(str(bits))
        if rel is None:
            what = f"{bits}-bit codes" if bits is not None else "codes"
            raise ExportError(f"the export in {self.folder} has no {kind} graph for {what} at cut {cut!r}; "
                              f"re-export with these --bits")
        return rel

    def check(self, spec: CandidateSpec | str) -> CandidateSpec:
        """A candidate of the pipeline whose graphs the export holds (the trivial cuts need only model.onnx)."""
        spec = super().check(spec)
        if not spec.is_end:
            for kind, bits in self.graph_kinds(spec):
                self.graph(spec.cut, kind, bits)
        return spec

    def graph_kinds(self, spec: CandidateSpec) -> list[tuple[str, int | None]]:
        """The graphs an inner-cut candidate runs: `edge` + `cloud` (at its bits) where the export fuses its coder
        (the autoencoder at its widest width), else `head` + `tail` with the coder run eagerly between them."""
        if coder_for(spec).fused(self, spec):
            return [("edge", None), ("cloud", spec.bits)]
        return [("head", None), ("tail", None)]

    def check_complete(self) -> None:
        """Raise ExportError unless every candidate of the pipeline has its graphs (what a profile times)."""
        missing = []
        for c in self.cuts:
            if c.trivial:
                continue
            kinds = {("head", None), ("tail", None)}
            for coder in coders():
                for spec in coder.settings(self, c.id):
                    kinds.update(self.graph_kinds(spec))
            for kind, b in sorted(kinds, key=lambda k: (k[0], k[1] or 0)):
                try:
                    self.graph(c.id, kind, b)
                except ExportError:
                    missing.append(f"{c.id} {kind}" + (f" {b}b" if b else ""))
        if missing:
            raise ExportError(f"the export in {self.folder} lacks {len(missing)} graphs ({', '.join(missing[:4])}"
                              f"{', ...' if len(missing) > 4 else ''}); profiling times every candidate: export "
                              f"with --cuts all and every bitwidth")

    def warm(self) -> None:
        """Split the torch model (for checks) and open every graph now, so no request pays for it."""
        super().warm()
        self.graphs.session(self.manifest["model_graph"])
        for cut, entry in self.manifest["cuts"].items():
            for kind in ("head", "tail", "edge"):
                if kind in entry:
                    self.graphs.session(entry[kind])
            for b in entry.get("cloud", {}):
                self.graphs.session(self.graph(cut, "cloud", int(b)))

    # -- the graphs on numpy arrays ------------------------------------------------------------------
    def input_array(self, raw) -> np.ndarray:
        """Raw samples -> the float32 model input the graphs take."""
        return np.ascontiguousarray(self.input_tensor(raw).numpy(), dtype=np.float32)

    def model_scores(self, x: np.ndarray) -> np.ndarray:
        return self.graphs.run(self.manifest["model_graph"], {"x": x})

    def head_feature(self, x: np.ndarray, cut: str) -> np.ndarray:
        return self.graphs.run(self.graph(cut, "head"), {"x": x})

    def tail_scores(self, feature: np.ndarray, cut: str) -> np.ndarray:
        return self.graphs.run(self.graph(cut, "tail"), {"feature": np.ascontiguousarray(feature, np.float32)})

    def edge_codes(self, x: np.ndarray, cut: str, bits: int) -> np.ndarray:
        lv = np.array([levels(bits)], dtype=np.float32)
        return self.graphs.run(self.graph(cut, "edge"), {"x": x, "levels": lv})

    def cloud_scores(self, codes: np.ndarray, cut: str, bits: int) -> np.ndarray:
        return self.graphs.run(self.graph(cut, "cloud", bits), {"codes": np.ascontiguousarray(codes, np.uint8)})

    # -- the pipeline's stages -----------------------------------------------------------------------
    def edge_local(self, raw) -> tuple[torch.Tensor, Stages]:
        t0 = time.perf_counter_ns()
        scores = self.model_scores(self.input_array(raw))
        return torch.from_numpy(scores), Stages(head_ms=ms_since(t0))

    def edge_encode(self, raw, spec: CandidateSpec | str) -> tuple[bytes, Stages]:
        spec = as_spec(spec)
        coder = coder_for(spec) if spec.remote else None
        if spec.is_end or (coder.kind.coded and not coder.fused(self, spec)):
            return super().edge_encode(raw, spec)
        self.check(spec)
        st = Stages()
        t0 = time.perf_counter_ns()
        x = self.input_array(raw)
        out = self.edge_codes(x, spec.cut, spec.bits) if coder.kind.coded else self.head_feature(x, spec.cut)
        st.head_ms = ms_since(t0)
        t0 = time.perf_counter_ns()
        payload = coder.frame(out, spec, self)
        st.encode_ms = ms_since(t0)
        return payload, st

    def cloud_decode(self, payload: bytes) -> tuple[torch.Tensor, Stages, codec.DecodedFeature]:
        st = Stages()
        t0 = time.perf_counter_ns()
        dec, coder = self.decode_payload(payload)
        spec = coder.spec_of(dec, self)
        fused = dec.cut != INPUT and coder.kind.coded and coder.fused(self, spec)
        if not fused:
            with torch.inference_mode():
                x = np.ascontiguousarray(coder.decode(self, dec).numpy(), dtype=np.float32)
        st.decode_ms = ms_since(t0)
        t0 = time.perf_counter_ns()
        if dec.cut == INPUT:
            scores = self.model_scores(x)
        elif fused:
            scores = self.cloud_scores(dec.array, dec.cut, dec.bits)
        else:
            scores = self.tail_scores(x, dec.cut)
        st.tail_ms = ms_since(t0)
        return torch.from_numpy(scores), st, dec


def runtime_pipeline(pipeline: SplitPipeline, runtime: str = "torch", onnx: str | Path | None = None,
                     threads: int | None = None) -> SplitPipeline:
    """`pipeline` run by `runtime`: itself for "torch", an OnnxPipeline over the export `onnx` for "onnxruntime"."""
    if runtime not in RUNTIMES:
        raise PlannerError(f"unknown runtime {runtime!r}; choose {' or '.join(RUNTIMES)}")
    if runtime == "torch":
        if onnx is not None:
            raise PlannerError("an ONNX export folder was given but the runtime is torch: choose onnxruntime")
        return pipeline
    if onnx is None:
        raise PlannerError("the onnxruntime runtime needs the export folder (--onnx DIR from `planner export`)")
    import_onnxruntime()
    return OnnxPipeline(pipeline, onnx, threads)
