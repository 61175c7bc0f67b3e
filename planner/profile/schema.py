"""The profile file: what one device measured for one model + autoencoder, as versioned JSON.

The solver reads two of these (one measured on the edge device, one on the cloud server) and never needs
torch. Field reference, with an example, in docs/profile-format.md; in short (schema_version 4):

    schema_version   4 (1-3 still load: 1-2 have one latent width and no raw quantizer, 1-3 no lossy input formats)
    model            zoo name or user string ("vgg-fmnist", "mymodels:tiny")
    autoencoder      autoencoder id string, or null (raw features only)
    role             "edge" | "cloud" | "both": which side's timings were measured
    device           {cpu, physical_cores, logical_cores, threads, freq_mhz, memory_gb, os, torch, gpu,
                      cpu_quota, ...}: facts, each may be null; extra keys allowed
    settings         {batch, repeats, device, ...}: how it was measured; extra keys allowed
    scaled           null, or {"compute": factor} when every compute time was multiplied (what-if)
    backbone_accuracy percent, or null = unknown
    bits, widths     [2, 3, 4, 6, 8] bitwidths profiled; [4, 8, 16, 32] latent widths (union over cuts) or []
    quantizer        the training-free raw quantizer's id, or null; quant_bits: its bitwidths
    input            {shape, raw_bytes, compressed_bytes, encode_ms, decode_ms}: the cloud-only payload (lossless);
                     formats: {"jpeg90": {bytes_mean, bytes_p95, encode_ms, decode_ms, accuracy}, ...}: the input
                     as lossy image files (JPEG/WebP at a quality), each a cloud-only candidate of its own
    whole_model_ms   timing of the whole model on this device (edge-only on the edge, cloud-only on the cloud)
    reply_bytes      size of the result message the cloud sends back
    cuts             the non-trivial cuts in execution order: [ {id, index, shape, float32_bytes, head_ms, tail_ms,
                        raw:  {"float32": {bytes, serialize_ms, deserialize_ms},
                               "float16": {bytes, serialize_ms, deserialize_ms, accuracy}}   (float16 optional)
                        bits: {"<b>": {bytes_mean, bytes_p95, encode_ms, decode_ms, accuracy}}   (widest width)
                        widest: the widest latent width of this cut (or null),
                        widths: {"<w>": {"<b>": {...}}}   (the narrower widths, same entries)
                        quant:  {"<b>": {...}}   (the raw quantizer, same entries) } ... ]
    created          optional ISO time stamp; notes: optional free text; batch_ms: optional (profile.batching)

A timing is {"median": ms, "iqr": ms, "n": repeats} (optionally "p10", "p90"), or null where this role did not
measure it (edge: tail/decode/deserialize; cloud: head/encode/serialize). Accuracy: percent, or null (unknown).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from planner.errors import ProfileError, SolveError
from planner.profile.batching import check_batch_ms, scale_batch_ms
from planner.profile.power import EdgePower
from planner.profile.timing import Timing
from planner.types import RAW_DTYPES, Role, parse_input_format

SCHEMA_VERSION = 4  # 4: lossy input formats; 3: latent widths and raw-quantizer entries; 2: optional exchange_ms
ROLES = tuple(r.value for r in Role)
DEVICE_KEYS = ("cpu", "physical_cores", "logical_cores", "threads", "freq_mhz", "memory_gb", "os", "torch", "gpu",
               "cpu_quota")
SETTINGS_KEYS = ("batch", "repeats", "device")


class _Bad(Exception):
    """A malformed field; `where` is its path in the document, e.g. cuts[2].bits.4.encode_ms.median."""

    def __init__(self, where: str, message: str):
        super().__init__(f"field {where}: {message}")


# -- field readers (validate one JSON value, name it on failure) --------------------------------------------
def _get(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise _Bad(f"{where}.{key}" if where else key, "missing")
    return d[key]


def _obj(v: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = (), open_: bool = False) -> dict:
    if not isinstance(v, dict):
        raise _Bad(where, f"expected an object, got {type(v).__name__}")
    for k in required:
        _get(v, k, where)
    if not open_:
        unknown = sorted(set(v) - set(required) - set(optional))
        if unknown:
            raise _Bad(f"{where}.{unknown[0]}" if where else unknown[0],
                       f"unknown field (schema {SCHEMA_VERSION} knows {', '.join(required + optional)})")
    return v


def _num(v: Any, where: str, *, integer: bool = False, null: bool = False, positive: bool = False,
         percent: bool = False) -> Any:
    if v is None and null:
        return None
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
        raise _Bad(where, f"expected {'an integer' if integer else 'a number'}{' or null' if null else ''}, got {v!r}")
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise _Bad(where, f"must be {'> 0' if positive else '>= 0'}, got {v!r}")
    if percent and v > 100:
        raise _Bad(where, f"is a percentage (0-100), got {v!r}")
    return v if integer else float(v)


def _str(v: Any, where: str, *, null: bool = False, choices: tuple[str, ...] | None = None) -> str | None:
    if v is None and null:
        return None
    if not isinstance(v, str) or not v:
        raise _Bad(where, f"expected a non-empty string{' or null' if null else ''}, got {v!r}")
    if choices and v not in choices:
        raise _Bad(where, f"must be one of {', '.join(choices)}, got {v!r}")
    return v


def _shape(v: Any, where: str) -> tuple[int, ...]:
    if not isinstance(v, list) or not v:
        raise _Bad(where, f"expected a non-empty list of positive integers, got {v!r}")
    return tuple(_num(x, f"{where}[{i}]", integer=True, positive=True) for i, x in enumerate(v))


def _timing(v: Any, where: str, *, null: bool = True) -> Timing | None:
    if v is None and null:
        return None
    _obj(v, where, ("median", "iqr", "n"), ("p10", "p90"))
    return Timing(**{k: _num(x, f"{where}.{k}", integer=k == "n") for k, x in v.items()})


def _timing_dict(t: Timing | None) -> dict | None:
    d = None if t is None else asdict(t)
    if d and d.get("p10") == 0 and d.get("p90") == 0:  # not recorded: keep the file as it was written
        del d["p10"], d["p90"]
    return d


def _scale(t: Timing | None, k: float) -> Timing | None:
    return None if t is None else replace(t, **{f.name: getattr(t, f.name) * k for f in fields(t) if f.name != "n"})


# -- the document ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawFormat:
    """The feature sent uncompressed in one dtype (no autoencoder): Neurosurgeon-style splitting."""

    bytes: int
    serialize_ms: Timing | None
    deserialize_ms: Timing | None
    accuracy: float | None = None  # float16 only; float32 is the backbone itself

    def to_dict(self, dtype: str) -> dict:
        d = {"bytes": self.bytes, "serialize_ms": _timing_dict(self.serialize_ms),
             "deserialize_ms": _timing_dict(self.deserialize_ms)}
        return d if dtype == "float32" else {**d, "accuracy": self.accuracy}

    @classmethod
    def from_dict(cls, v: Any, where: str, dtype: str) -> RawFormat:
        keys = ("bytes", "serialize_ms", "deserialize_ms") + (() if dtype == "float32" else ("accuracy",))
        _obj(v, where, keys)
        return cls(_num(v["bytes"], f"{where}.bytes", integer=True, positive=True),
                   _timing(v["serialize_ms"], f"{where}.serialize_ms"),
                   _timing(v["deserialize_ms"], f"{where}.deserialize_ms"),
                   None if dtype == "float32" else _num(v["accuracy"], f"{where}.accuracy", null=True, percent=True))

    def scaled(self, k: float) -> RawFormat:
        return replace(self, serialize_ms=_scale(self.serialize_ms, k), deserialize_ms=_scale(self.deserialize_ms, k))


@dataclass(frozen=True)
class BitsEntry:
    """One cut at one setting (bitwidth, and latent width) of a coder: payload size, codec times, accuracy."""

    bytes_mean: float
    bytes_p95: float
    encode_ms: Timing | None
    decode_ms: Timing | None
    accuracy: float | None

    def to_dict(self) -> dict:
        return {"bytes_mean": self.bytes_mean, "bytes_p95": self.bytes_p95, "encode_ms": _timing_dict(self.encode_ms),
                "decode_ms": _timing_dict(self.decode_ms), "accuracy": self.accuracy}

    @classmethod
    def from_dict(cls, v: Any, where: str) -> BitsEntry:
        _obj(v, where, ("bytes_mean", "bytes_p95", "encode_ms", "decode_ms", "accuracy"))
        return cls(_num(v["bytes_mean"], f"{where}.bytes_mean", positive=True),
                   _num(v["bytes_p95"], f"{where}.bytes_p95", positive=True),
                   _timing(v["encode_ms"], f"{where}.encode_ms"), _timing(v["decode_ms"], f"{where}.decode_ms"),
                   _num(v["accuracy"], f"{where}.accuracy", null=True, percent=True))

    def scaled(self, k: float) -> BitsEntry:
        return replace(self, encode_ms=_scale(self.encode_ms, k), decode_ms=_scale(self.decode_ms, k))


def _entries(v: Any, where: str, allowed: tuple[int, ...], what: str) -> dict[int, BitsEntry]:
    table = _obj(v, where, (), open_=True)
    entries = {}
    for key, entry in table.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) in allowed):
            raise _Bad(f"{where}.{key}", f"not one of the profile's {what} {list(allowed)}")
        entries[int(key)] = BitsEntry.from_dict(entry, f"{where}.{key}")
    return dict(sorted(entries.items()))


@dataclass(frozen=True)
class CutProfile:
    """One non-trivial cut: head/tail times on this device and every way to send its feature."""

    id: str
    index: int
    shape: tuple[int, ...]
    float32_bytes: int
    head_ms: Timing | None
    tail_ms: Timing | None
    raw: dict[str, RawFormat]
    bits: dict[int, BitsEntry]  # the autoencoder at this cut's widest latent width
    widest: int | None = None  # that width (None: an autoencoder of one width, or a schema 1-2 file)
    widths: dict[int, dict[int, BitsEntry]] = field(default_factory=dict)  # narrower width -> bits -> entry
    quant: dict[int, BitsEntry] = field(default_factory=dict)  # the raw quantizer: bits -> entry

    def to_dict(self) -> dict:
        return {"id": self.id, "index": self.index, "shape": list(self.shape), "float32_bytes": self.float32_bytes,
                "head_ms": _timing_dict(self.head_ms), "tail_ms": _timing_dict(self.tail_ms),
                "raw": {k: r.to_dict(k) for k, r in self.raw.items()},
                "bits": {str(b): e.to_dict() for b, e in self.bits.items()}, "widest": self.widest,
                "widths": {str(w): {str(b): e.to_dict() for b, e in t.items()} for w, t in self.widths.items()},
                "quant": {str(b): e.to_dict() for b, e in self.quant.items()}}

    def settings(self) -> list[tuple[int | None, int, BitsEntry]]:
        """Every autoencoder setting of this cut as (width, bits, entry); width None is the widest."""
        return [(None, b, e) for b, e in self.bits.items()] + [
            (w, b, e) for w, t in self.widths.items() for b, e in t.items()]

    @classmethod
    def from_dict(cls, v: Any, where: str, bits: tuple[int, ...], widths: tuple[int, ...] = (),
                  quant_bits: tuple[int, ...] = ()) -> CutProfile:
        _obj(v, where, ("id", "index", "shape", "float32_bytes", "head_ms", "tail_ms", "raw", "bits"),
             ("widest", "widths", "quant"))
        raw = _obj(v["raw"], f"{where}.raw", ("float32",), ("float16",))
        widest = _num(v.get("widest"), f"{where}.widest", integer=True, null=True, positive=True)
        narrow = _obj(v.get("widths", {}), f"{where}.widths", (), open_=True)
        for key in narrow:
            if not (isinstance(key, str) and key.isdigit() and int(key) in widths and widest and int(key) < widest):
                raise _Bad(f"{where}.widths.{key}", f"not one of the profile's widths {list(widths)} below this "
                                                    f"cut's widest ({widest})")
        return cls(_str(v["id"], f"{where}.id"), _num(v["index"], f"{where}.index", integer=True),
                   _shape(v["shape"], f"{where}.shape"),
                   _num(v["float32_bytes"], f"{where}.float32_bytes", integer=True, positive=True),
                   _timing(v["head_ms"], f"{where}.head_ms"), _timing(v["tail_ms"], f"{where}.tail_ms"),
                   {k: RawFormat.from_dict(raw[k], f"{where}.raw.{k}", k) for k in RAW_DTYPES if k in raw},
                   _entries(v["bits"], f"{where}.bits", bits, "bits"), widest,
                   {int(w): _entries(t, f"{where}.widths.{w}", bits, "bits") for w, t in sorted(
                       narrow.items(), key=lambda kv: int(kv[0]))},
                   _entries(v.get("quant", {}), f"{where}.quant", quant_bits, "quant_bits"))

    def scaled(self, k: float) -> CutProfile:
        return replace(self, head_ms=_scale(self.head_ms, k), tail_ms=_scale(self.tail_ms, k),
                       raw={d: r.scaled(k) for d, r in self.raw.items()},
                       bits={b: e.scaled(k) for b, e in self.bits.items()},
                       widths={w: {b: e.scaled(k) for b, e in t.items()} for w, t in self.widths.items()},
                       quant={b: e.scaled(k) for b, e in self.quant.items()})


@dataclass(frozen=True)
class InputProfile:
    """The model input as the cloud-only plan ships it: losslessly compressed, and as lossy image files
    (`formats`: 'jpeg90' -> bytes, encode/decode times and accuracy, like a coded cut's entry)."""

    shape: tuple[int, ...]
    raw_bytes: int
    compressed_bytes: float
    encode_ms: Timing | None
    decode_ms: Timing | None
    formats: dict[str, BitsEntry] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "raw_bytes": self.raw_bytes, "compressed_bytes": self.compressed_bytes,
                "encode_ms": _timing_dict(self.encode_ms), "decode_ms": _timing_dict(self.decode_ms),
                "formats": {f: e.to_dict() for f, e in self.formats.items()}}

    @classmethod
    def from_dict(cls, v: Any, where: str) -> InputProfile:
        _obj(v, where, ("shape", "raw_bytes", "compressed_bytes", "encode_ms", "decode_ms"), ("formats",))
        formats = {}
        for name, entry in _obj(v.get("formats", {}), f"{where}.formats", (), open_=True).items():
            try:
                fmt = parse_input_format(name)
            except Exception as exc:  # noqa: BLE001 - named as the field that holds it
                raise _Bad(f"{where}.formats.{name}", str(exc)) from None
            if fmt != name:
                raise _Bad(f"{where}.formats.{name}", f"write the format as {fmt!r}")
            formats[fmt] = BitsEntry.from_dict(entry, f"{where}.formats.{name}")
        return cls(_shape(v["shape"], f"{where}.shape"),
                   _num(v["raw_bytes"], f"{where}.raw_bytes", integer=True, positive=True),
                   _num(v["compressed_bytes"], f"{where}.compressed_bytes", positive=True),
                   _timing(v["encode_ms"], f"{where}.encode_ms"), _timing(v["decode_ms"], f"{where}.decode_ms"),
                   formats)

    def scaled(self, k: float) -> InputProfile:
        return replace(self, encode_ms=_scale(self.encode_ms, k), decode_ms=_scale(self.decode_ms, k),
                       formats={f: e.scaled(k) for f, e in self.formats.items()})


@dataclass(frozen=True)
class Profile:
    """Everything one device measured for one model + autoencoder (see the module docstring for the fields)."""

    model: str
    autoencoder: str | None
    role: str
    device: dict[str, Any]
    settings: dict[str, Any]
    backbone_accuracy: float | None
    bits: tuple[int, ...]
    input: InputProfile
    whole_model_ms: Timing
    reply_bytes: int
    cuts: tuple[CutProfile, ...]
    scaled_by: dict[str, float] | None = None  # JSON "scaled"
    created: str | None = None
    notes: str | None = None
    exchange_ms: Timing | None = None  # one small-frame round trip through the real client and server (loopback)
    widths: tuple[int, ...] = ()  # the autoencoder's latent widths (union over cuts); () for one width
    quantizer: str | None = None  # the raw quantizer's id, or None (no quant entries)
    quant_bits: tuple[int, ...] = ()
    batch_ms: dict | None = None  # cloud: decoder + tail at several batch sizes (planner.profile.batching)
    schema_version: int = SCHEMA_VERSION
    source: str | None = field(default=None, compare=False)  # the file it was loaded from, for messages

    # -- JSON -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON document (schema_version first)."""
        return {"schema_version": SCHEMA_VERSION, "model": self.model, "autoencoder": self.autoencoder,
                "role": self.role, "device": dict(self.device), "settings": dict(self.settings),
                "scaled": None if self.scaled_by is None else dict(self.scaled_by),
                "backbone_accuracy": self.backbone_accuracy, "bits": list(self.bits), "input": self.input.to_dict(),
                "whole_model_ms": _timing_dict(self.whole_model_ms), "reply_bytes": self.reply_bytes,
                "cuts": [c.to_dict() for c in self.cuts], "created": self.created, "notes": self.notes,
                "exchange_ms": _timing_dict(self.exchange_ms), "widths": list(self.widths), "quantizer": self.quantizer,
                "quant_bits": list(self.quant_bits), **({"batch_ms": self.batch_ms} if self.batch_ms else {})}

    @classmethod
    def from_dict(cls, d: Any, source: str | None = None) -> Profile:
        """Validate and build; a malformed document raises ProfileError naming `source` and the field."""
        try:
            return cls._from_dict(d, source)
        except _Bad as exc:
            raise ProfileError(f"profile {source or '<dict>'}: {exc}") from None

    @classmethod
    def _from_dict(cls, d: Any, source: str | None) -> Profile:
        if not isinstance(d, dict):
            raise _Bad("(top level)", f"expected a JSON object, got {type(d).__name__}")
        version = _get(d, "schema_version", "")
        if isinstance(version, bool) or not isinstance(version, int):
            raise _Bad("schema_version", f"expected an integer, got {version!r}")
        if version > SCHEMA_VERSION:
            raise _Bad("schema_version", f"{version} is newer than this planner reads ({SCHEMA_VERSION}); "
                                         "upgrade planner or re-profile")
        if version < 1:
            raise _Bad("schema_version", f"{version} is not a profile schema version (they start at 1)")
        required = ("schema_version", "model", "autoencoder", "role", "device", "settings", "scaled",
                    "backbone_accuracy", "bits", "input", "whole_model_ms", "reply_bytes", "cuts")
        _obj(d, "", required, ("created", "notes", "exchange_ms", "batch_ms") + (("widths", "quantizer", "quant_bits")
                                                                     if version >= 3 else ()))
        device = _obj(d["device"], "device", DEVICE_KEYS, open_=True)
        if device.get("power") is not None:  # the edge's power (planner.profile.power): checked, kept as a dict
            EdgePower.from_dict(device["power"], f"device.power of profile {source or '<dict>'}")
        settings = _obj(d["settings"], "settings", SETTINGS_KEYS, open_=True)
        scaled = d["scaled"]
        if scaled is not None:
            _obj(scaled, "scaled", ("compute",))
            scaled = {"compute": _num(scaled["compute"], "scaled.compute", positive=True)}
        bits = _ints(d["bits"], "bits", 32)
        widths = _ints(d.get("widths", []), "widths", 1 << 20)
        quant_bits = _ints(d.get("quant_bits", []), "quant_bits", 8)
        cuts = d["cuts"]
        if not isinstance(cuts, list):
            raise _Bad("cuts", f"expected a list, got {type(cuts).__name__}")
        cuts = tuple(CutProfile.from_dict(c, f"cuts[{i}]", bits, widths, quant_bits) for i, c in enumerate(cuts))
        seen: set[str] = set()
        for i, c in enumerate(cuts):
            if c.id in seen or c.id in ("input", "output"):
                raise _Bad(f"cuts[{i}].id", f"{c.id!r} is a duplicate or a reserved id (input/output)")
            if i and c.index <= cuts[i - 1].index:
                raise _Bad(f"cuts[{i}].index", f"cuts must be in execution order (index {c.index} after "
                                                f"{cuts[i - 1].index})")
            seen.add(c.id)
        whole = _timing(_get(d, "whole_model_ms", ""), "whole_model_ms", null=False)
        return cls(model=_str(d["model"], "model"), autoencoder=_str(d["autoencoder"], "autoencoder", null=True),
                   role=_str(d["role"], "role", choices=ROLES), device=dict(device), settings=dict(settings),
                   backbone_accuracy=_num(d["backbone_accuracy"], "backbone_accuracy", null=True, percent=True),
                   bits=bits, input=InputProfile.from_dict(d["input"], "input"), whole_model_ms=whole,
                   reply_bytes=_num(d["reply_bytes"], "reply_bytes", integer=True), cuts=cuts, scaled_by=scaled,
                   created=_str(d.get("created"), "created", null=True), notes=_str(d.get("notes"), "notes", null=True),
                   exchange_ms=_timing(d.get("exchange_ms"), "exchange_ms"), widths=widths, quant_bits=quant_bits,
                   quantizer=_str(d.get("quantizer"), "quantizer", null=True), schema_version=version, source=source,
                   batch_ms=check_batch_ms(d["batch_ms"]) if d.get("batch_ms") else None)

    def save(self, path: str | Path) -> Path:
        """Write the JSON document (creating parent folders)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Read and validate a profile file; any problem is a ProfileError naming the file (and field)."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProfileError(f"profile {path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"profile {path}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ProfileError(f"profile {path}: not JSON: {exc}") from None
        return cls.from_dict(d, source=str(path))

    # -- what-if ----------------------------------------------------------------------------------------
    def scaled(self, compute: float) -> Profile:
        """A copy with every compute time (median, spread) multiplied by `compute`; marked in `scaled`."""
        if not (isinstance(compute, int | float) and math.isfinite(compute) and compute > 0):
            raise ProfileError(f"compute scale must be a positive number, got {compute!r}")
        previous = (self.scaled_by or {}).get("compute", 1.0)
        return replace(self, input=self.input.scaled(compute), whole_model_ms=_scale(self.whole_model_ms, compute),
                       cuts=tuple(c.scaled(compute) for c in self.cuts), scaled_by={"compute": previous * compute},
                       batch_ms=scale_batch_ms(self.batch_ms, compute))

    name = property(lambda self: self.source or f"<{self.role} profile of {self.model}>")  # its file, or model/role

    def cut(self, cut_id: str) -> CutProfile:
        for c in self.cuts:
            if c.id == cut_id:
                return c
        raise ProfileError(f"profile {self.name} has no cut {cut_id!r} (cuts: {', '.join(c.id for c in self.cuts)})")

    # -- tables -----------------------------------------------------------------------------------------
    def cuts_frame(self):
        """One row per cut: shape, float32 bytes, head/tail ms, raw-feature bytes and times (pandas)."""
        import pandas as pd

        rows = []
        for c in self.cuts:
            row = {"cut": c.id, "index": c.index, "shape": "x".join(map(str, c.shape)),
                   "float32_bytes": c.float32_bytes, **_timing_cols("head", c.head_ms), **_timing_cols("tail", c.tail_ms)}
            for dtype, r in c.raw.items():
                row.update({f"{dtype}_bytes": r.bytes, **_timing_cols(f"{dtype}_serialize", r.serialize_ms),
                            **_timing_cols(f"{dtype}_deserialize", r.deserialize_ms)})
                if dtype != "float32":
                    row[f"{dtype}_accuracy"] = r.accuracy
            rows.append(row)
        return pd.DataFrame(rows)

    def bits_frame(self):
        """One row per (cut, bits): payload bytes (mean, p95), encode/decode ms, accuracy (pandas)."""
        import pandas as pd

        settings = [(c, "shared" if self.autoencoder else None, w if w is not None else c.widest, b, e)
                    for c in self.cuts for w, b, e in c.settings()]
        settings += [(c, "quant", None, b, e) for c in self.cuts for b, e in c.quant.items()]
        rows = [{"cut": c.id, "index": c.index, "method": m, "width": w, "bits": b, "bytes_mean": e.bytes_mean,
                 "bytes_p95": e.bytes_p95, **_timing_cols("encode", e.encode_ms), **_timing_cols("decode", e.decode_ms),
                 "accuracy": e.accuracy} for c, m, w, b, e in settings]
        columns = ["cut", "index", "method", "width", "bits", "bytes_mean", "bytes_p95", "encode_ms", "encode_iqr",
                   "decode_ms", "decode_iqr", "accuracy"]
        return pd.DataFrame(rows, columns=columns)

    def to_csv(self, directory: str | Path, stem: str | None = None) -> list[Path]:
        """Write `<stem>.cuts.csv` and `<stem>.bits.csv` (stem: the profile file's name) and return their paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = stem or (Path(self.source).stem if self.source else f"{self.model}-{self.role}".replace(":", "_"))
        paths = [directory / f"{stem}.cuts.csv", directory / f"{stem}.bits.csv"]
        self.cuts_frame().to_csv(paths[0], index=False)
        self.bits_frame().to_csv(paths[1], index=False)
        return paths


def _ints(v: Any, where: str, top: int) -> tuple[int, ...]:
    """A list of distinct positive integers <= top (bitwidths, widths)."""
    if not isinstance(v, list):
        raise _Bad(where, f"expected a list of integers, got {v!r}")
    out = tuple(_num(x, f"{where}[{i}]", integer=True, positive=True) for i, x in enumerate(v))
    if len(set(out)) != len(out) or any(x > top for x in out):
        raise _Bad(where, f"must be distinct integers in 1..{top}, got {list(out)}")
    return out


def _timing_cols(prefix: str, t: Timing | None) -> dict:
    return {f"{prefix}_ms": math.nan if t is None else t.median, f"{prefix}_iqr": math.nan if t is None else t.iqr}


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file (`Profile.load`)."""
    return Profile.load(path)


def check_compatible(edge: Profile, cloud: Profile) -> None:
    """Raise SolveError unless the two profiles describe the same model, autoencoder, cuts and bitwidths."""
    for what, a, b in (("model", edge.model, cloud.model), ("autoencoder", edge.autoencoder, cloud.autoencoder)):
        if a != b:
            raise SolveError(f"edge and cloud profiles are of different {what}s: {a!r} ({edge.name}) vs "
                             f"{b!r} ({cloud.name}); profile both devices with the same {what}")
    for side, p, want in (("edge", edge, ("edge", "both")), ("cloud", cloud, ("cloud", "both"))):
        if p.role not in want:
            raise SolveError(f"{p.name} was profiled for the {p.role} role but is given as the {side} profile")
    ids_e, ids_c = [c.id for c in edge.cuts], [c.id for c in cloud.cuts]
    if ids_e != ids_c:
        diff = sorted(set(ids_e) ^ set(ids_c)) or ["(same cuts, different order)"]
        raise SolveError(f"edge and cloud profiles list different cuts ({', '.join(diff)}): "
                         f"{edge.name} vs {cloud.name}")
    if edge.quantizer != cloud.quantizer:
        raise SolveError(f"edge and cloud profiles have different raw quantizers: {edge.quantizer!r} ({edge.name}) "
                         f"vs {cloud.quantizer!r} ({cloud.name}); profile both devices with the same calibration")
    for ce, cc in zip(edge.cuts, cloud.cuts, strict=True):
        se, sc = {(w, b) for w, b, _ in ce.settings()}, {(w, b) for w, b, _ in cc.settings()}
        if se != sc or set(ce.quant) != set(cc.quant):
            raise SolveError(f"cut {ce.id!r} was profiled at other (width, bits) settings on the edge ({edge.name}) "
                             f"than on the cloud ({cloud.name}): {sorted(se, key=str)} + quant {sorted(ce.quant)} vs "
                             f"{sorted(sc, key=str)} + quant {sorted(cc.quant)}")
