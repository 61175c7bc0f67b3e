"""The autoencoder's configuration: the per-cut plan (`CutSpec`, `plan_cut`: channels, reduction, widest latent)
and `AEConfig` (the cuts, variant, widths and bits one autoencoder serves)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from planner.compress.quantize import check_bits
from planner.compress.shapes import as_map_shape
from planner.config import DEFAULT_BITS, DEFAULT_LATENT, DEFAULT_WIDTHS
from planner.errors import CompressError

VARIANTS = ("slim", "adapter", "residual")


@dataclass
class CutSpec:
    """How the autoencoder treats one cut: its feature shape, spatial reduction and latent widths."""

    id: str
    shape: tuple[int, int, int]  # (C, H, W) of the feature (or of its map view), per sample
    reduction: int  # 1, 2 or 4
    latent_channels: int  # the widest latent width of this cut
    feature_shape: tuple[int, ...] | None = None  # (T, D) or (D,) when the feature is not a map
    widths: tuple[int, ...] = ()  # the latent widths served, ascending, the last = latent_channels

    def __post_init__(self):
        self.widths = tuple(sorted({int(w) for w in self.widths} | {int(self.latent_channels)}))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The per-sample shape of the features this cut takes and gives back."""
        return tuple(self.feature_shape) if self.feature_shape else tuple(self.shape)

    @property
    def mid_size(self) -> tuple[int, int]:
        r = self.reduction
        return (-(-self.shape[1] // r), -(-self.shape[2] // r))

    @property
    def entry_channels(self) -> int:
        """Channels entering the 1x1 entry conv: C * reduction^2 (after the space-to-depth)."""
        return self.shape[0] * self.reduction ** 2

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Per-sample code shape at the widest width."""
        return self.latent_shape_at(None)

    def latent_shape_at(self, width: int | None) -> tuple[int, int, int]:
        """Per-sample code shape at `width` (None: the widest)."""
        return (self.width(width), *self.mid_size)

    def width(self, width: int | None) -> int:
        """`width` checked to be one this cut serves (None: the widest)."""
        if width is None:
            return self.latent_channels
        if isinstance(width, bool) or not isinstance(width, int) or width not in self.widths:
            raise CompressError(f"cut {self.id!r} serves latent widths {', '.join(map(str, self.widths))}, "
                                f"not {width!r}")
        return width


def plan_cut(cut_id: str, shape: Sequence[int], latent: float = DEFAULT_LATENT, max_reduction: int = 2,
             min_side: int = 7, widths: Sequence[int] = DEFAULT_WIDTHS) -> CutSpec:
    """The reduction (the largest power of two <= max_reduction that keeps both sides >= min_side), the widest
    latent width (`latent` channels if an integer >= 1, else that fraction of the entry channels k*C, at most
    k*C) and the narrower `widths` of one cut. Token sequences and vectors are planned on their map view."""
    feature = tuple(int(s) for s in shape)
    c, h, w = as_map_shape(feature)
    if max_reduction not in (1, 2, 4):
        raise CompressError(f"max_reduction must be 1, 2 or 4, got {max_reduction}")
    r = 1
    while 2 * r <= max_reduction and min(h, w) // (2 * r) >= min_side:
        r *= 2
    if latent <= 0:
        raise CompressError(f"latent width must be positive (a channel count or a fraction of C), got {latent}")
    k = c * r * r
    lat = max(1, min(int(latent) if latent >= 1 else round(latent * k), k))
    if any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in widths):
        raise CompressError(f"latent widths must be positive integers, got {list(widths)}")
    return CutSpec(cut_id, (c, h, w), r, lat, None if len(feature) == 3 else feature,
                   tuple(x for x in widths if x < lat))


@dataclass
class AEConfig:
    """Everything needed to rebuild an autoencoder (its weights aside); serializes to JSON."""

    cuts: list[CutSpec]
    bits: tuple[int, ...] = DEFAULT_BITS
    variant: str = "slim"
    width: int = 32  # unused by the linear encoder; kept in the file for the record
    decoder_width: int = 48
    latent: float = DEFAULT_LATENT  # the widest width as given: a channel count, or a fraction of k*C
    max_reduction: int = 2
    min_side: int = 7
    widths: tuple[int, ...] = DEFAULT_WIDTHS  # the latent widths served (each cut: those below its widest, + it)
    extra: dict = field(default_factory=dict)  # free-form notes (the backbone's name, ...)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise CompressError(f"unknown variant {self.variant!r}; choose {' or '.join(VARIANTS)}")
        if not self.cuts:
            raise CompressError("an autoencoder needs at least one cut")
        self.bits = tuple(sorted({check_bits(b) for b in self.bits}))
        self.widths = tuple(sorted({int(w) for w in self.widths}))
        self.cuts = [c if isinstance(c, CutSpec) else CutSpec(c["id"], tuple(c["shape"]), c["reduction"],
                                                               c["latent_channels"], c.get("feature_shape"),
                                                               tuple(c.get("widths", ())))
                     for c in self.cuts]
        for c in self.cuts:
            c.shape = tuple(int(s) for s in c.shape)
            c.feature_shape = tuple(int(s) for s in c.feature_shape) if c.feature_shape else None

    @classmethod
    def for_cuts(cls, cuts: Sequence, latent: float = DEFAULT_LATENT, max_reduction: int = 2, min_side: int = 7,
                 widths: Sequence[int] = DEFAULT_WIDTHS, **kw) -> AEConfig:
        """A config serving `cuts` (Cut objects or (id, (C, H, W)) pairs)."""
        pairs = [(c.id, c.shape) if hasattr(c, "id") else c for c in cuts]
        specs = [plan_cut(cid, shape, latent, max_reduction, min_side, widths) for cid, shape in pairs]
        return cls(specs, latent=latent, max_reduction=max_reduction, min_side=min_side, widths=tuple(widths), **kw)

    def only(self, cut_id: str) -> AEConfig:
        """The same config restricted to one cut (an independent autoencoder)."""
        spec = next(c for c in self.cuts if c.id == cut_id)
        return AEConfig(**{**self.__dict__, "cuts": [spec], "extra": dict(self.extra)})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bits"], d["widths"] = list(self.bits), list(self.widths)
        for c in d["cuts"]:
            c["shape"], c["widths"] = list(c["shape"]), list(c["widths"])
            if c["feature_shape"] is None:
                del c["feature_shape"]
            else:
                c["feature_shape"] = list(c["feature_shape"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> AEConfig:
        return cls(**{**d, "bits": tuple(d["bits"]), "widths": tuple(d.get("widths", ()))})
