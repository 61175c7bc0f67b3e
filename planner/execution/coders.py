"""The coders: how each kind of candidate turns what crosses the link into bytes and back.

One contract per `CandidateKind` that sends something (in the spirit of CompressAI's `CompressionModel`:
`compress` -> bytes, `decompress` -> the tensor), and the one place that decides which coder made a payload:

| kind | coder | bytes | ONNX export |
|---|---|---|---|
| `cloud-only` | `InputCoder` | the raw sample (uint8 pixels, else float32), or uint8 images as JPEG/WebP files at a quality (`cloud-only@jpeg90`) | `model.onnx` |
| `raw` | `RawCoder` | the feature at the cut, float32 or float16 | `head` + `tail` graphs |
| `split` | `AutoencoderCoder` | the shared autoencoder's b-bit codes at a latent width | `edge` + `cloud` graphs (widest width) |
| `quant` | `QuantizerCoder` | the raw quantizer's b-bit codes (codec flag `FLAG_RAWQUANT`) | `head` + `tail` graphs, codes eager |

A coder owns: whether a pipeline can run a candidate (`check`), its bytes (`encode`, `decode`), the shape a
payload must have (`check_shape`), the candidates it offers at a cut (`settings`), where a candidate's
figures live in a profile's cut entry (`profile_key`) and in an accuracy table (`accuracy_key`), and whether
the exported ONNX graphs fuse it (`fused`). The pipeline, the profiler, the accuracy tables, ONNX Runtime, the
edge and the server all ask `coder_for(spec)` or `coder_of_payload(decoded)`; a new coder plugs in with
`register(...)` (and, when its payloads need telling apart, a codec flag or mode of its own that `claims`
recognizes).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from planner.compress import codec
from planner.compress.entropy import model_for
from planner.errors import CompressError
from planner.types import INPUT_CUT, RAW_DTYPES, CandidateKind, CandidateSpec, split_input_format


class Coder:
    """The contract of one kind of candidate; subclasses fill in what their kind sends."""

    kind: CandidateKind
    what: str = ""  # its name in messages

    def claims(self, dec: codec.FeatureHeader | codec.DecodedFeature) -> bool:
        """Whether a payload with this header was made by this coder."""
        raise NotImplementedError

    def spec_of(self, dec: codec.FeatureHeader | codec.DecodedFeature, pipeline) -> CandidateSpec:
        """The candidate a payload (made by this coder) belongs to."""
        raise NotImplementedError

    def check(self, pipeline, spec: CandidateSpec) -> None:
        """Raise CompressError unless `pipeline` can run `spec` (its cut exists: checked by the pipeline)."""

    def encode(self, pipeline, x, spec: CandidateSpec) -> bytes:
        """What crosses at `spec` (the head's feature, or the raw sample for the input coder) -> codec bytes."""
        raise NotImplementedError

    def decode(self, pipeline, dec: codec.DecodedFeature):
        """A decoded payload -> the tensor the rest of the model takes (the tail's feature, or the input)."""
        raise NotImplementedError

    def reconstruct(self, pipeline, x, spec: CandidateSpec):
        """What the cloud gets back for `x` at `spec`, without the framing (lossless): what accuracy measures."""
        books = getattr(pipeline, "entropy_books", None)
        return self.decode(pipeline, codec.decode(self.encode(pipeline, x, spec), entropy=books() if books else None))

    def expected_shape(self, pipeline, dec: codec.DecodedFeature) -> tuple[bool, object]:
        """(whether dec's per-sample shape is right, the expected shape for the message)."""
        raise NotImplementedError

    def settings(self, pipeline, cut: str) -> list[CandidateSpec]:
        """The candidates this coder offers at inner cut `cut` of `pipeline` (none by default)."""
        return []

    def profile_key(self, spec: CandidateSpec) -> tuple[str, ...]:
        """Where the candidate's figures live in a profile's cut entry (keys from the entry down)."""
        raise NotImplementedError

    def accuracy_key(self, spec: CandidateSpec) -> tuple[str, ...]:
        """Where the candidate's accuracy lives in an accuracy table's cut entry."""
        return self.profile_key(spec)

    def fused(self, pipeline, spec: CandidateSpec) -> bool:
        """Whether a `planner export` folder runs this candidate's coder inside its `edge`/`cloud` graphs (else the
        head/tail graphs run around the coder, eagerly)."""
        return False

    def frame(self, array: np.ndarray, spec: CandidateSpec, pipeline=None) -> bytes:
        """The codec bytes of what this coder's model produced (codes, or the raw array) at `spec` (with the
        entropy model of `pipeline`'s coder, when it has one, so that the codec may entropy-code the codes)."""
        raise NotImplementedError

    def export_graphs(self, pipeline, cut: str, stem: str, halves: tuple, examples: tuple, bits: list[int],
                      write) -> dict:
        """Export this coder's fused graphs at `cut` (`halves`: the head and tail modules, `examples`: an input
        batch and its feature) with `write(module, args, inputs, outputs, rel_path, what, batched)`; their
        manifest entries. None by default: the head/tail graphs run around the coder."""
        return {}

    def check_payload(self, pipeline, dec: codec.DecodedFeature) -> None:
        """Raise CompressError unless the payload is a candidate of `pipeline` with the right shape."""
        self.check(pipeline, self.spec_of(dec, pipeline))
        ok, expected = self.expected_shape(pipeline, dec)
        if not ok or len(dec.shape) < 2:
            raise CompressError(f"payload for cut {dec.cut!r} has shape {dec.shape}; expected (batch, *{expected})")


def _as_numpy(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


class InputCoder(Coder):
    """Cloud-only: the raw sample crosses as it is (uint8 pixels as bytes, anything else as float32), or, as a real
    client sends a photo, uint8 images as lossy JPEG/WebP files at a quality (`spec.fmt`, e.g. 'jpeg90': the
    codec's image stages, the quality in the header)."""

    kind = CandidateKind.CLOUD_ONLY
    what = "input"

    def claims(self, dec) -> bool:
        return dec.cut == INPUT_CUT

    def spec_of(self, dec, pipeline) -> CandidateSpec:
        image = dec.lossless in codec.IMAGE_STAGES
        return CandidateSpec.cloud_only(f"{dec.lossless}{dec.quality}" if image else None)

    def check(self, pipeline, spec: CandidateSpec) -> None:
        if spec.fmt is not None and spec.fmt not in self.formats(pipeline, [spec.fmt]):
            raise CompressError(f"{pipeline.name} cannot send its input as {spec.fmt}: that takes images (C x H x W "
                                f"with C = 1 or 3, or H x W) of uint8 pixels, and Pillow with the codec; its input is "
                                f"{'x'.join(map(str, pipeline.input_shape))}")

    def formats(self, pipeline, wanted) -> tuple[str, ...]:
        """The lossy formats among `wanted` ('jpeg90', ...) this pipeline's input can be sent as: all of them for a
        float model taking images of 1 or 3 channels, with the codec built into Pillow here; else none. (The raw
        samples must be uint8 too: `encode` refuses others.)"""
        from planner.compress import imagecoding

        shape = tuple(pipeline.input_shape)
        image = len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3))
        if not image or not pipeline.input_dtype.is_floating_point:
            return ()
        return tuple(f for f in wanted if imagecoding.supported(split_input_format(f, CompressError)[0]))

    def encode(self, pipeline, x, spec: CandidateSpec) -> bytes:
        return self.frame(_as_numpy(x), spec)

    def frame(self, array: np.ndarray, spec: CandidateSpec, pipeline=None) -> bytes:
        if spec.fmt is not None:
            name, quality = split_input_format(spec.fmt, CompressError)
            return codec.encode(array, INPUT_CUT, mode="uint8", lossless=name, level=quality)
        mode = "uint8" if array.dtype == np.uint8 else (spec.dtype or "float32")
        return codec.encode(array, INPUT_CUT, mode=mode)

    def decode(self, pipeline, dec: codec.DecodedFeature):
        return pipeline.input_tensor(dec.array if dec.mode == "uint8" else dec.values())

    def expected_shape(self, pipeline, dec) -> tuple[bool, object]:
        return int(np.prod(dec.shape[1:])) == int(np.prod(pipeline.input_shape)), pipeline.input_shape

    def profile_key(self, spec: CandidateSpec) -> tuple[str, ...]:
        return ("input",) if spec.fmt is None else ("input", "formats", spec.fmt)


class RawCoder(Coder):
    """The raw feature at a cut, float32 (lossless) or float16."""

    kind = CandidateKind.RAW
    what = "raw feature"

    def claims(self, dec) -> bool:
        return dec.cut != INPUT_CUT and dec.mode in RAW_DTYPES

    def spec_of(self, dec, pipeline) -> CandidateSpec:
        return CandidateSpec.raw(dec.cut, dec.mode)

    def check(self, pipeline, spec: CandidateSpec) -> None:
        if spec.dtype not in RAW_DTYPES:
            raise CompressError(f"a raw feature crosses as {' or '.join(RAW_DTYPES)}, not {spec.dtype!r}")

    def encode(self, pipeline, x, spec: CandidateSpec) -> bytes:
        return self.frame(_as_numpy(x), spec)

    def frame(self, array: np.ndarray, spec: CandidateSpec, pipeline=None) -> bytes:
        return codec.encode(array, spec.cut, mode=spec.dtype, lossless="none")

    def decode(self, pipeline, dec: codec.DecodedFeature):
        import torch

        return torch.from_numpy(dec.values())

    def reconstruct(self, pipeline, x, spec: CandidateSpec):
        return x.half().float() if spec.dtype == "float16" else x

    def expected_shape(self, pipeline, dec) -> tuple[bool, object]:
        expected = tuple(pipeline.partitioner.cut(dec.cut).shape)
        return tuple(dec.shape[1:]) == expected, expected

    def settings(self, pipeline, cut: str) -> list[CandidateSpec]:
        return [CandidateSpec.raw(cut, d) for d in RAW_DTYPES]

    def profile_key(self, spec: CandidateSpec) -> tuple[str, ...]:
        return ("raw", spec.dtype)

    def accuracy_key(self, spec: CandidateSpec) -> tuple[str, ...]:
        return (spec.dtype,)


class CodesCoder(Coder):
    """b-bit codes of a learned or calibrated coder the pipeline holds (`model_of`), marked by `flag` in the codec."""

    flag = 0
    attribute = ""  # the pipeline attribute holding the coder's model
    missing = ""  # the message when the pipeline has none

    def model_of(self, pipeline):
        return getattr(pipeline, self.attribute, None)

    def claims(self, dec) -> bool:
        return dec.mode == "codes" and dec.coder_flag == self.flag

    def check(self, pipeline, spec: CandidateSpec) -> None:
        model = self.model_of(pipeline)
        if model is None:
            raise CompressError(self.missing.format(name=pipeline.name))
        if spec.cut not in model.cuts:
            raise CompressError(f"the {self.what} does not serve cut {spec.cut!r}; it serves {', '.join(model.cuts)}")
        if spec.bits not in model.bits:
            raise CompressError(f"the {self.what} was not made for {spec.bits} bits; it serves {model.bits}")

    def encode(self, pipeline, x, spec: CandidateSpec) -> bytes:
        return self.frame(self.model_of(pipeline).encode(x, spec.cut, spec.bits, spec.width).numpy(), spec, pipeline)

    def frame(self, array: np.ndarray, spec: CandidateSpec, pipeline=None) -> bytes:
        """The codes framed by the codec: entropy-coded (ANS) with the coder's static model of this (cut, width,
        bits) when it has one and that is the smallest, else zlib/zstd/plain."""
        model = model_for(self.model_of(pipeline), spec.cut, array, spec.bits) if pipeline is not None else None
        return codec.encode(array, spec.cut, spec.bits, coder_flag=self.flag, entropy=model)

    def decode(self, pipeline, dec: codec.DecodedFeature):
        return self.model_of(pipeline).decode(dec.tensor(), dec.cut, dec.bits)

    def reconstruct(self, pipeline, x, spec: CandidateSpec):
        model = self.model_of(pipeline)
        return model.decode(model.encode(x, spec.cut, spec.bits, spec.width), spec.cut, spec.bits)


class AutoencoderCoder(CodesCoder):
    """The shared (or independent) autoencoder's codes at (cut, bits, latent width)."""

    kind = CandidateKind.SPLIT
    what = "autoencoder"
    attribute = "ae"
    missing = "{name} has no autoencoder loaded: only raw cuts are possible"

    def spec_of(self, dec, pipeline) -> CandidateSpec:
        ae = self.model_of(pipeline)
        widths = ae.widths(dec.cut) if ae is not None and dec.cut in ae.cuts else ()
        width = dec.shape[1] if len(dec.shape) > 1 and dec.shape[1] in widths[:-1] else None
        return CandidateSpec.split(dec.cut, dec.bits, width)

    def check(self, pipeline, spec: CandidateSpec) -> None:
        super().check(pipeline, spec)
        if spec.width is not None:
            pipeline.ae.spec(spec.cut).width(spec.width)

    def expected_shape(self, pipeline, dec) -> tuple[bool, object]:
        ae = pipeline.ae
        widths = ae.widths(dec.cut)
        width = dec.shape[1] if len(dec.shape) > 1 and dec.shape[1] in widths else None
        expected = tuple(ae.latent_shape(dec.cut, width))
        if tuple(dec.shape[1:]) == expected:
            return True, expected
        return False, f"(W, {', '.join(map(str, expected[1:]))}) with W one of {', '.join(map(str, widths))}"

    def settings(self, pipeline, cut: str) -> list[CandidateSpec]:
        ae = pipeline.ae
        if ae is None or cut not in ae.cuts:
            return []
        widths = ae.widths(cut)
        return [CandidateSpec.split(cut, b, None if w == widths[-1] else w) for w in widths for b in ae.bits]

    def profile_key(self, spec: CandidateSpec) -> tuple[str, ...]:
        return ("bits", str(spec.bits)) if spec.width is None else ("widths", str(spec.width), str(spec.bits))

    def fused(self, pipeline, spec: CandidateSpec) -> bool:
        return spec.width is None or spec.width == pipeline.ae.widths(spec.cut)[-1]

    def export_graphs(self, pipeline, cut: str, stem: str, halves: tuple, examples: tuple, bits: list[int],
                      write) -> dict:
        """`edge` (input, levels -> codes: head + encoder + quantizer, every bitwidth) and one `cloud` graph per
        bitwidth (codes -> scores: dequantize + decoder + tail) where the autoencoder serves the cut."""
        import torch

        from planner.compress.quantize import levels
        from planner.execution.onnx_export import CloudGraph, EdgeGraph

        ae = pipeline.ae
        if ae is None or cut not in ae.cuts or not bits:
            return {}
        (head, tail), (x, feature) = halves, examples
        where = f"of {pipeline.name} at {cut}"
        lv = torch.tensor([float(levels(bits[-1]))])
        entry = {"latent_shape": list(ae.latent_shape(cut)),
                 "edge": write(EdgeGraph(head, ae, cut), (x, lv), ["x", "levels"], ["codes"], f"edge/{stem}.onnx",
                               f"the edge graph {where}", ("x", "codes")), "cloud": {}}
        with torch.no_grad():
            codes = ae.encode(feature, cut, bits[-1])
        for b in bits:
            entry["cloud"][str(b)] = write(CloudGraph(tail, ae, cut, b), (codes,), ["codes"], ["scores"],
                                           f"cloud/{stem}_{b}b.onnx", f"the cloud graph {where}, {b} bits")
        return entry


class QuantizerCoder(CodesCoder):
    """The training-free raw quantizer's codes at (cut, bits): the feature's own shape, per-channel clip ranges."""

    kind = CandidateKind.QUANT
    what = "raw quantizer"
    flag = codec.FLAG_RAWQUANT
    attribute = "quantizer"
    missing = "{name} has no raw-quantizer calibration loaded (make one with `planner calibrate-quant`)"

    def spec_of(self, dec, pipeline) -> CandidateSpec:
        return CandidateSpec.quant(dec.cut, dec.bits)

    def expected_shape(self, pipeline, dec) -> tuple[bool, object]:
        expected = tuple(pipeline.quantizer.latent_shape(dec.cut))
        return tuple(dec.shape[1:]) == expected, expected

    def settings(self, pipeline, cut: str) -> list[CandidateSpec]:
        q = pipeline.quantizer
        return [CandidateSpec.quant(cut, b) for b in q.bits] if q is not None and cut in q.cuts else []

    def profile_key(self, spec: CandidateSpec) -> tuple[str, ...]:
        return ("quant", str(spec.bits))


_REGISTRY: dict[str, Coder] = {}


def register(coder: Coder, *, replace: bool = False) -> Coder:
    """Add a coder, keyed by its kind; `replace` swaps the one registered for that kind."""
    key = str(coder.kind)
    if key in _REGISTRY and not replace:
        raise CompressError(f"a coder for {key!r} is registered already ({type(_REGISTRY[key]).__name__})")
    _REGISTRY[key] = coder
    return coder


for _coder in (InputCoder(), RawCoder(), AutoencoderCoder(), QuantizerCoder()):
    register(_coder)


def coders() -> Iterator[Coder]:
    """Every registered coder, in registration order."""
    return iter(list(_REGISTRY.values()))


def coder_for(spec: CandidateSpec) -> Coder:
    """The coder of a candidate (edge-only has none: nothing crosses)."""
    coder = _REGISTRY.get(str(spec.kind))
    if coder is None:
        raise CompressError(f"no coder sends {spec.kind.value} candidates ({spec.label})")
    return coder


def coder_of_payload(dec: codec.FeatureHeader | codec.DecodedFeature) -> Coder:
    """The coder that made a payload, from its header (cut, mode, coder flag)."""
    for coder in _REGISTRY.values():
        if coder.claims(dec):
            return coder
    raise CompressError(f"no coder makes {dec.mode} payloads at cut {dec.cut!r} (coder flag {dec.coder_flag})")


def coded_settings(pipeline, cut: str) -> list[tuple[Coder, CandidateSpec]]:
    """Every (coder, candidate) sending b-bit codes at inner cut `cut`: what profiles and accuracy tables cover."""
    return [(c, s) for c in coders() if c.kind.coded for s in c.settings(pipeline, cut)]


def put(table: dict, key: tuple[str, ...], value) -> None:
    """table[key[0]][key[1]]... = value, creating the dicts on the way."""
    for k in key[:-1]:
        table = table.setdefault(k, {})
    table[key[-1]] = value


def get(table: dict, key: tuple[str, ...], default=None):
    """table[key[0]][key[1]]..., or `default` where a level is missing."""
    for k in key:
        if not isinstance(table, dict) or k not in table:
            return default
        table = table[k]
    return table
