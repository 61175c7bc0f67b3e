"""The planner's vocabulary: roles, autoencoder kinds, candidate kinds and the identity of a candidate.

Torch-free and dependency-free, so that every layer (profiles, solver, runtime, reports, CLI) names things the
same way. The enums are `str`-valued: they compare equal to, hash like and serialize (JSON, CSV) as their
plain strings, so files and outputs keep the spellings they always had.
"""

from __future__ import annotations

import enum
import operator
import re
from dataclasses import dataclass

from planner.errors import CompressError, PlannerError

INPUT_CUT = "input"  # the cut id of cloud-only: the model's input crosses the link
OUTPUT_CUT = "output"  # the cut id of edge-only: nothing crosses
RAW_DTYPES = ("float32", "float16")  # raw-feature encodings, in order of preference
BITS_RANGE = (1, 8)  # the bitwidths the quantizer and the codec can carry
INPUT_CODECS = ("jpeg", "webp")  # lossy image codecs a cloud-only request can send its input with
QUALITY_RANGE = (1, 100)  # their quality setting


class Role(enum.StrEnum):
    """Which side a profile (or a process) measures: the edge device, the cloud server, or both."""

    EDGE = "edge"
    CLOUD = "cloud"
    BOTH = "both"

    def covers(self, side: Role | str) -> bool:
        """True when a profile of this role has the measurements of `side` ('both' covers either)."""
        return self is Role.BOTH or self == side


class AutoencoderKind(enum.StrEnum):
    """Which compressor a model is run or profiled with: the one shared autoencoder, one per cut, or none."""

    SHARED = "shared"
    INDEPENDENT = "independent"
    NONE = "none"

    @classmethod
    def trained(cls) -> tuple[AutoencoderKind, ...]:
        """The kinds that have weights (everything but NONE)."""
        return (cls.SHARED, cls.INDEPENDENT)

    @classmethod
    def choices(cls) -> list[str]:
        """The spellings a command line accepts."""
        return [k.value for k in cls]

    @classmethod
    def weights(cls, value: AutoencoderKind | str | None) -> AutoencoderKind | None:
        """The kind whose weights to load for `value`: None for 'none' (raw features only) or None."""
        kind = None if value is None else parse_enum(cls, value, "autoencoder kind", CompressError)
        return None if kind in (None, cls.NONE) else kind


class CandidateKind(enum.StrEnum):
    """How a request runs: ship the input, ship the raw feature at a cut, ship the autoencoder's codes at a cut,
    ship the training-free raw quantizer's codes at a cut, or compute everything on the edge."""

    CLOUD_ONLY = "cloud-only"
    RAW = "raw"
    SPLIT = "split"
    QUANT = "quant"
    EDGE_ONLY = "edge-only"

    @property
    def coded(self) -> bool:
        """Sends b-bit codes (the autoencoder's or the raw quantizer's)."""
        return self in (CandidateKind.SPLIT, CandidateKind.QUANT)

    @property
    def is_end(self) -> bool:
        """Cloud-only and edge-only: the two candidates that do not split the model."""
        return self in (CandidateKind.CLOUD_ONLY, CandidateKind.EDGE_ONLY)


def parse_enum(enum_type: type[enum.StrEnum], value: str | enum.StrEnum, what: str,
               error: type[PlannerError] = PlannerError) -> enum.StrEnum:
    """`value` as a member of `enum_type`, or `error` naming `what` and the choices."""
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum_type)
        raise error(f"{what} must be one of {choices}, got {value!r}") from None


def check_bits(bits, trained: tuple[int, ...] | None = None, error: type[PlannerError] = CompressError) -> int:
    """Validate a bitwidth (an int in 1..8, and one of `trained` when given); return it as int, or raise `error`."""
    lo, hi = BITS_RANGE
    try:
        if isinstance(bits, bool):
            raise TypeError
        b = operator.index(bits)
    except TypeError:
        raise error(f"bits must be an integer in {lo}..{hi}, got {bits!r}") from None
    if not lo <= b <= hi:
        raise error(f"bits must be an integer in {lo}..{hi}, got {b}")
    if trained is not None and b not in trained:
        raise error(f"this autoencoder was not trained for {b} bits; trained bitwidths: "
                    f"{', '.join(map(str, trained))}")
    return b


_INPUT_FORMAT = re.compile(r"^(?P<codec>[a-z]+?)(?:[ _-]?q)?(?P<quality>-?\d+)$")


def parse_input_format(text, error: type[PlannerError] = PlannerError) -> str:
    """A lossy input format as its canonical name: 'jpeg90', 'webp75' (also read: 'jpeg_q90', 'jpeg q90', 'JPEG90');
    a bad codec or a quality outside 1..100 raises `error` in one line."""
    m = _INPUT_FORMAT.match(text.strip().lower()) if isinstance(text, str) else None
    if not m or m["codec"] not in INPUT_CODECS:
        raise error(f"{text!r} is not an input format: use one of {', '.join(INPUT_CODECS)} with a quality, e.g. "
                    f"jpeg90 or webp75")
    lo, hi = QUALITY_RANGE
    quality = int(m["quality"])
    if not lo <= quality <= hi:
        raise error(f"{m['codec'].upper()} quality must be an integer in {lo}..{hi}, got {quality} (in {text!r})")
    return f"{m['codec']}{quality}"


def split_input_format(fmt: str, error: type[PlannerError] = PlannerError) -> tuple[str, int]:
    """'jpeg90' -> ('jpeg', 90) (the name checked)."""
    m = _INPUT_FORMAT.match(parse_input_format(fmt, error))
    return m["codec"], int(m["quality"])


_PLAN_ARG = re.compile(r"^(?P<cut>.+)@(?:(?P<q>q)?(?P<bits>\d+)(?:w(?P<width>\d+))?|(?P<raw>raw|f32|float32|f16|float16))$")
_DTYPE_TAG = {"float32": "f32", "float16": "f16"}


@dataclass(frozen=True)
class CandidateSpec:
    """What a candidate is, apart from how long it takes: its kind, cut, bitwidth, raw dtype and latent width.

    The key of a candidate everywhere (solver, plans, results, reports, CLI). `label` is its human name,
    `arg` its command-line spelling (`planner run --plan ...`), and `parse` reads either back.
    """

    kind: CandidateKind
    cut: str
    bits: int | None = None
    dtype: str | None = None
    width: int | None = None  # latent channels of the autoencoder (None: its widest)
    fmt: str | None = None  # cloud-only: the lossy image format of the input ('jpeg90'); None: lossless

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CandidateKind(self.kind))
        if self.fmt is not None:
            if self.kind != CandidateKind.CLOUD_ONLY:
                raise PlannerError(f"an input format belongs to a cloud-only candidate, got {self.fmt!r} for "
                                   f"{self.kind.value}")
            object.__setattr__(self, "fmt", parse_input_format(self.fmt))
        if self.kind == CandidateKind.RAW and self.dtype not in RAW_DTYPES:
            raise PlannerError(f"a raw candidate needs a dtype in {', '.join(RAW_DTYPES)}, got {self.dtype!r}")
        if self.kind.coded:
            check_bits(self.bits, error=PlannerError)
        if self.width is not None and (self.kind != CandidateKind.SPLIT or isinstance(self.width, bool)
                                       or not isinstance(self.width, int) or self.width < 1):
            raise PlannerError(f"a latent width (a positive channel count) belongs to an autoencoder candidate, got "
                               f"{self.width!r} for {self.kind.value}")

    @classmethod
    def cloud_only(cls, fmt: str | None = None) -> CandidateSpec:
        """Ship the input: losslessly (None) or as a lossy image ('jpeg90', 'webp75')."""
        return cls(CandidateKind.CLOUD_ONLY, INPUT_CUT, fmt=fmt)

    @classmethod
    def edge_only(cls) -> CandidateSpec:
        return cls(CandidateKind.EDGE_ONLY, OUTPUT_CUT)

    @classmethod
    def raw(cls, cut: str, dtype: str = "float32") -> CandidateSpec:
        return cls(CandidateKind.RAW, cut, None, dtype)

    @classmethod
    def split(cls, cut: str, bits: int, width: int | None = None) -> CandidateSpec:
        return cls(CandidateKind.SPLIT, cut, bits, None, width)

    @classmethod
    def quant(cls, cut: str, bits: int) -> CandidateSpec:
        return cls(CandidateKind.QUANT, cut, bits)

    @property
    def is_end(self) -> bool:
        return self.kind.is_end

    @property
    def remote(self) -> bool:
        """Uses the cloud (everything but edge-only)."""
        return self.kind != CandidateKind.EDGE_ONLY

    @property
    def lossless(self) -> bool:
        """Computes exactly what the unsplit model computes (the ends, the input sent losslessly, and the raw
        float32 feature)."""
        return (self.is_end and self.fmt is None) or self.dtype == "float32"

    @property
    def tag(self) -> str:
        """What is sent, in a few characters: 'cloud-only', 'cloud-only jpeg90', 'edge-only', 'f32', 'f16', '4b',
        '4b w8'."""
        if self.fmt is not None:
            return f"{self.kind.value} {self.fmt}"
        if self.is_end:
            return self.kind.value
        if self.kind == CandidateKind.RAW:
            return _DTYPE_TAG[self.dtype]
        if self.kind == CandidateKind.QUANT:
            return f"q{self.bits}b"
        return f"{self.bits}b" + (f" w{self.width}" if self.width is not None else "")

    @property
    def short_label(self) -> str:
        """'cloud-only', 'edge-only', 'pool1 f32', 'pool1 4b'."""
        return self.tag if self.is_end else f"{self.cut} {self.tag}"

    @property
    def label(self) -> str:
        """The human name: 'cloud-only', 'cloud-only jpeg90', 'edge-only', 'pool1 raw float16', 'pool1 @ 4 bits'."""
        if self.is_end:
            return self.tag
            return self.kind.value
        if self.kind == CandidateKind.RAW:
            return f"{self.cut} raw {self.dtype}"
        if self.kind == CandidateKind.QUANT:
            return f"{self.cut} quant {self.bits} bits"
        return f"{self.cut} @ {self.bits} bits" + (f", width {self.width}" if self.width is not None else "")

    @property
    def arg(self) -> str:
        """The command-line spelling: 'edge-only', 'cloud-only', 'cloud-only@jpeg90', 'pool1@4', 'pool1@4w8',
        'pool1@raw', 'pool1@f16'."""
        if self.is_end:
            return self.kind.value + (f"@{self.fmt}" if self.fmt is not None else "")
        if self.kind == CandidateKind.RAW:
            return f"{self.cut}@{'raw' if self.dtype == 'float32' else _DTYPE_TAG[self.dtype]}"
        if self.kind == CandidateKind.QUANT:
            return f"{self.cut}@q{self.bits}"
        return f"{self.cut}@{self.bits}" + (f"w{self.width}" if self.width is not None else "")

    @classmethod
    def parse(cls, text: str) -> CandidateSpec:
        """Read `arg` (or `label`) back: 'edge-only', 'cloud-only', 'CUT@BITS', 'CUT@BITSwW', 'CUT@raw', 'CUT@f16',
        'CUT raw float16', 'CUT @ 4 bits'."""
        if not isinstance(text, str) or not text.strip():
            raise PlannerError("a candidate needs a name: edge-only, cloud-only, cloud-only@jpeg90, CUT@BITS, CUT@BITSwWIDTH, CUT@qBITS or "
                               "CUT@raw")
        s = text.strip()
        if s in (CandidateKind.EDGE_ONLY, CandidateKind.CLOUD_ONLY):
            return cls.edge_only() if s == CandidateKind.EDGE_ONLY else cls.cloud_only()
        lossy = re.fullmatch(rf"{CandidateKind.CLOUD_ONLY.value}[@ ](?P<fmt>.+)", s)
        if lossy:
            return cls.cloud_only(lossy["fmt"])
        label = re.fullmatch(r"(?P<cut>\S+) (?:raw (?P<dtype>float32|float16)|quant (?P<qbits>\d+) bits|@ (?P<bits>\d+) "
                             r"bits(?:, width (?P<width>\d+))?)", s)
        if label:
            if label["dtype"]:
                return cls.raw(label["cut"], label["dtype"])
            if label["qbits"]:
                return cls.quant(label["cut"], int(label["qbits"]))
            return cls.split(label["cut"], int(label["bits"]), _int(label["width"]))
        m = _PLAN_ARG.match(s)
        if not m or m["cut"] in (INPUT_CUT, OUTPUT_CUT):
            raise PlannerError(f"{text!r} is not a candidate: use edge-only, cloud-only, CUT@BITS (e.g. relu_5@4), "
                               f"CUT@BITSwWIDTH (relu_5@4w8), CUT@qBITS (raw quantizer), CUT@raw or CUT@f16")
        if m["raw"]:
            return cls.raw(m["cut"], "float16" if m["raw"] in ("f16", "float16") else "float32")
        if m["q"]:
            if m["width"]:
                raise PlannerError(f"{text!r}: the raw quantizer (CUT@qBITS) has no latent width")
            return cls.quant(m["cut"], int(m["bits"]))
        return cls.split(m["cut"], int(m["bits"]), _int(m["width"]))

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "cut": self.cut, "bits": self.bits, "dtype": self.dtype,
                "width": self.width, "format": self.fmt}

    def __str__(self) -> str:
        return self.label


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)
