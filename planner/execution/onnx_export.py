"""Export a split pipeline to ONNX graphs, the way edge devices and servers deploy it, with a checked manifest.

Per exported cut: `head` (input -> feature) and `tail` (feature -> scores) for the raw-feature candidates; where
the autoencoder serves the cut, an `edge` graph (input, levels -> uint8 codes: head + encoder + quantizer, one
graph for every bitwidth, `levels` = 2**bits - 1) and one `cloud` graph per bitwidth (uint8 codes -> scores:
dequantize + decoder + tail, whose BatchNorm statistics depend on the bitwidth). `model.onnx` (input -> scores)
serves edge-only and cloud-only. The graphs take the model's float input (the pipeline's `preprocess`, e.g.
Fashion-MNIST normalization, stays outside), every batch dimension is dynamic, and the latent is bounded, so
the codes carry no scale parameters (the codec frames them exactly as the PyTorch path does). `manifest.json`
records the model spec, sha256 of the model's and the autoencoder's weights, cuts, bits, widths, the input
spec, the opset and every file's sha256; `planner.execution.onnx_runtime` refuses an export that does not match.
Which fused graphs a cut gets is its coders' business (`Coder.export_graphs`, planner.execution.coders).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from planner.compress.quantize import check_bits, levels
from planner.errors import ExportError
from planner.execution.coders import coders
from planner.modelspec import state_sha256

__all__ = ["export_pipeline", "load_manifest", "check_manifest", "module_sha256", "state_sha256"]

FORMAT_VERSION = 1
DEFAULT_OPSET = 17
MANIFEST = "manifest.json"
CUT_CHOICES = ("all", "served")


def module_sha256(module: nn.Module | None) -> str | None:
    """The one weights digest (`planner.modelspec.state_sha256`) of a module, None for None."""
    return None if module is None else state_sha256(module)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class EdgeGraph(nn.Module):
    """Head + encoder + quantizer of one cut: (input, levels) -> uint8 codes, the rounding of `to_codes`. For the
    residual variant, whose clip range depends on the bitwidth, the graph picks the served bitwidth whose level
    count `levels` is (a one-hot over `ae.bits`, exact in float), so one edge graph still serves every bitwidth."""

    def __init__(self, head: nn.Module, ae, cut: str):
        super().__init__()
        self.head, self.ae, self.cut = head, ae, cut
        self.per_bits = ae.config.variant == "residual"
        self.register_buffer("served_levels", torch.tensor([float(levels(b)) for b in ae.bits]), persistent=False)

    def forward(self, x: torch.Tensor, levels_: torch.Tensor) -> torch.Tensor:
        z = self.ae.latent(self.head(x), self.cut)
        if self.per_bits:
            pick = (self.served_levels == levels_).to(z.dtype)
            z = sum(pick[j] * self.ae.bounded(z, self.cut, b) for j, b in enumerate(self.ae.bits))
        return torch.round(z.clamp(0.0, 1.0) * levels_).to(torch.uint8)


class CloudGraph(nn.Module):
    """Dequantize + decoder + tail of one cut at one bitwidth: uint8 codes -> scores (as `from_codes`)."""

    def __init__(self, tail: nn.Module, ae, cut: str, bits: int):
        super().__init__()
        self.tail, self.ae, self.cut, self.bits = tail, ae, cut, bits

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        q = codes.to(torch.float32) / levels(self.bits)
        return self.tail(self.ae.reconstruct(q, self.cut, self.bits))


def select_export_cuts(pipeline, cuts) -> list:
    """The inner cuts to export: "all", "served" (those the autoencoder serves) or a list of cut ids."""
    inner = [c for c in pipeline.cuts if not c.trivial]
    served = set(pipeline.ae.cuts) if pipeline.ae is not None else set()
    if cuts in (None, "all"):
        return inner
    if cuts == "served":
        if not served:
            raise ExportError(f"{pipeline.name} has no autoencoder loaded: --cuts served exports nothing")
        return [c for c in inner if c.id in served]
    by_id = {c.id: c for c in inner}
    unknown = [c for c in cuts if c not in by_id]
    if unknown:
        raise ExportError(f"not inner cuts of {pipeline.name}: {', '.join(unknown)}; cuts: {', '.join(by_id)}")
    return [by_id[c] for c in dict.fromkeys(cuts)]


def _export_bits(pipeline, bits) -> list[int]:
    if pipeline.ae is None:
        if bits:
            raise ExportError(f"{pipeline.name} has no autoencoder loaded: --bits needs one")
        return []
    if bits is None:
        return list(pipeline.ae.bits)
    return sorted({check_bits(b, pipeline.ae.bits) for b in bits})


def _file_stem(cut) -> str:
    return f"{cut.index:03d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', cut.id)}"


def _export(module: nn.Module, args: tuple, names_in: list[str], names_out: list[str], path: Path, opset: int,
            what: str, batched: tuple[str, ...] | None = None) -> None:
    """torch.onnx.export (TorchScript exporter: offline, deterministic) with a dynamic batch dimension."""
    batched = names_in[:1] + names_out if batched is None else batched
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=opset,
                              input_names=names_in, output_names=names_out, do_constant_folding=True,
                              dynamic_axes={n: {0: "batch"} for n in batched})
    except Exception as exc:  # noqa: BLE001 - any exporter failure means this graph cannot be exported
        raise ExportError(f"cannot export {what} to ONNX: {type(exc).__name__}: {exc}") from None


def export_pipeline(pipeline, out: str | Path, *, cuts="all", bits=None, opset: int = DEFAULT_OPSET,
                    spec: dict | None = None, progress: bool = False) -> dict:
    """Write the graphs of `pipeline` (a SplitPipeline) and manifest.json into `out`; return the manifest.

    `cuts`: "all" inner cuts (default), "served" or a list of ids; `bits`: the bitwidths (default: all the
    autoencoder was trained for); `spec`: how the model was named (--model/--weights/--input-shape)."""
    out = Path(out)
    chosen, bit_list = select_export_cuts(pipeline, cuts), _export_bits(pipeline, bits)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, *pipeline.input_shape, generator=gen)
    _export(pipeline.model, (x,), ["x"], ["scores"], out / "model.onnx", opset, f"{pipeline.name} (whole model)")
    entries = {}
    iterator = chosen
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(chosen, desc=f"export {pipeline.name}", unit="cut")
    for c in iterator:
        entries[c.id] = _export_cut(pipeline, c, x, out, opset, bit_list)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.onnx"))
    manifest = {
        "format": FORMAT_VERSION, "model": pipeline.name, "model_spec": spec or {"model": pipeline.name},
        "weights_sha256": pipeline.weights_sha256, "autoencoder": pipeline.ae_id,
        "autoencoder_sha256": module_sha256(pipeline.ae),
        "input": {"name": "x", "shape": list(pipeline.input_shape), "dtype": "float32", "batch": "dynamic",
                  "preprocess": getattr(pipeline.preprocess, "__name__", "custom")},
        "opset": opset, "torch": torch.__version__, "bits": bit_list, "model_graph": "model.onnx",
        "cuts": entries, "files": {f: file_sha256(out / f) for f in files},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _export_cut(pipeline, c, x: torch.Tensor, out: Path, opset: int, bit_list: list[int]) -> dict:
    """The graphs of one cut (raw head/tail, and each coder's fused graphs at `bit_list`) and its manifest entry."""
    head, tail = pipeline.split(c.id)
    stem = _file_stem(c)
    with torch.no_grad():
        feature = head(x)
    entry = {"index": c.index, "shape": list(c.shape), "head": f"head/{stem}.onnx", "tail": f"tail/{stem}.onnx"}
    _export(head, (x,), ["x"], ["feature"], out / entry["head"], opset, f"the head of {pipeline.name} at {c.id}")
    _export(tail, (feature,), ["feature"], ["scores"], out / entry["tail"], opset,
            f"the tail of {pipeline.name} at {c.id}")

    def write(module, args, names_in, names_out, rel: str, what: str, batched=None) -> str:
        _export(module, args, names_in, names_out, out / rel, opset, what, batched)
        return rel

    for coder in coders():
        entry.update(coder.export_graphs(pipeline, c.id, stem, (head, tail), (x, feature), bit_list, write))
    return entry


def load_manifest(folder: str | Path) -> dict:
    """manifest.json of an export folder, with a clear error when it is missing, foreign or of another format."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ExportError(f"{folder} is not an ONNX export (no {MANIFEST}); make one with `planner export`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ExportError(f"{path}: export format {got!r}, expected {FORMAT_VERSION}; re-export with `planner export`")
    return manifest


def check_manifest(manifest: dict, pipeline, folder: str | Path, verify_files: bool = True) -> None:
    """Raise ExportError unless the export was made from this pipeline's model and autoencoder weights (and,
    with `verify_files`, every graph file is the one the manifest lists)."""
    where = f"the export in {folder}"
    if manifest.get("model") != pipeline.name:
        raise ExportError(f"{where} is of model {manifest.get('model')!r}, not {pipeline.name!r}")
    if list(manifest.get("input", {}).get("shape", [])) != list(pipeline.input_shape):
        raise ExportError(f"{where} takes inputs of shape {manifest.get('input', {}).get('shape')}, the model "
                          f"{list(pipeline.input_shape)}")
    if manifest.get("weights_sha256") != pipeline.weights_sha256:
        raise ExportError(f"{where} was made from other weights of {pipeline.name}; re-export with the weights you run")
    if manifest.get("autoencoder_sha256") != module_sha256(pipeline.ae):
        raise ExportError(f"{where} was made with autoencoder {manifest.get('autoencoder')!r}, but this runs "
                          f"{pipeline.ae_id!r}; re-export with the autoencoder you deploy")
    if verify_files:
        for rel, sha in manifest.get("files", {}).items():
            path = Path(folder) / rel
            if not path.is_file() or file_sha256(path) != sha:
                raise ExportError(f"{where}: {rel} is missing or changed since the export; re-export")
