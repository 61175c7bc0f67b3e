"""Static entropy models of b-bit codes, coded with ANS (constriction): the codec's "ans" lossless stage.

An `EntropyModel` is one categorical distribution per channel (axis 1 of a (N, C, ...) code array) over the
2**bits symbols, fitted once on training images' codes (counts + 1, so every symbol can be coded) and frozen:
the sender and the receiver hold the same tables (shipped inside the autoencoder or raw-quantizer file), so
nothing about the model travels with a payload but its 32-bit `tag` (a digest of the tables, cut, width and
bits). A payload coded with a model the receiver lacks is refused by tag, never decoded with the wrong tables.

`EntropyBook` holds the models of one coder, keyed by (cut, width, bits) and by tag, and turns into a dict of
tensors for `torch.save` (and back).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from planner.errors import CodecError

TABLE_DTYPE = np.uint32  # counts per (channel, symbol)


def _constriction():
    try:
        import constriction
    except ImportError:
        raise CodecError("entropy coding (lossless 'ans') needs the constriction package: pip install constriction "
                         "(a dependency of planner; reinstall with scripts/setup.sh)") from None
    return constriction


@dataclass(eq=False)
class EntropyModel:
    """Per-channel symbol counts of one (cut, width, bits) setting; `tag` identifies the tables."""

    cut: str
    width: int
    bits: int
    counts: np.ndarray  # (C, 2**bits) uint32, every entry >= 1
    tag: int = 0
    _models: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        counts = np.asarray(self.counts)
        k = 1 << int(self.bits)
        if counts.ndim != 2 or counts.shape[1] != k or counts.shape[0] < 1 or (counts < 1).any():
            raise CodecError(f"entropy model for {self.cut}@{self.bits}w{self.width}: expected counts of shape "
                             f"(C, {k}) all >= 1, got {counts.shape}")
        self.counts = counts.astype(TABLE_DTYPE)
        h = hashlib.sha256(f"{self.cut}|{self.width}|{self.bits}|".encode() + self.counts.tobytes())
        self.tag = int.from_bytes(h.digest()[:4], "little")

    @property
    def channels(self) -> int:
        return int(self.counts.shape[0])

    @classmethod
    def fit(cls, codes: np.ndarray, cut: str, bits: int, width: int | None = None) -> EntropyModel:
        """Count the symbols of each channel of `codes` (N, C, ...) in [0, 2**bits - 1]."""
        codes = np.asarray(codes)
        c = codes.shape[1]
        k = 1 << bits
        flat = np.moveaxis(codes, 1, 0).reshape(c, -1).astype(np.int64)
        counts = np.stack([np.bincount(row, minlength=k)[:k] for row in flat]) + 1
        return cls(cut, int(width if width is not None else c), int(bits), counts)

    def _channel_models(self) -> list:
        if not self._models:
            model = _constriction().stream.model.Categorical
            probs = self.counts.astype(np.float64)
            probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
            self._models = [model(p, perfect=False) for p in probs]
        return self._models

    def _check(self, shape: tuple[int, ...]) -> None:
        if len(shape) < 2 or shape[1] != self.channels:
            raise CodecError(f"entropy model {self.cut}@{self.bits}w{self.width} codes {self.channels} channels "
                             f"(axis 1), not shape {tuple(shape)}")

    def compress(self, codes: np.ndarray) -> bytes:
        """ANS words (little-endian uint32) of `codes` (N, C, ...), channel by channel."""
        codes = np.asarray(codes)
        self._check(codes.shape)
        models = self._channel_models()
        coder = _constriction().stream.stack.AnsCoder()
        per_channel = np.moveaxis(codes, 1, 0).reshape(self.channels, -1).astype(np.int32)
        for c in range(self.channels - 1, -1, -1):  # a stack: the last channel in is the first out
            coder.encode_reverse(per_channel[c], models[c])
        return coder.get_compressed().astype("<u4").tobytes()

    def decompress(self, data: bytes | memoryview, shape: tuple[int, ...]) -> np.ndarray:
        """The uint8 codes of `shape` from `compress`'s bytes; CodecError when the words do not decode exactly."""
        self._check(shape)
        if len(data) % 4:
            raise CodecError(f"ANS payload of {len(data)} bytes is not a whole number of 32-bit words")
        words = np.frombuffer(data, "<u4").astype(np.uint32)  # may be empty: a near-certain message
        n = int(np.prod(shape)) // self.channels
        try:
            coder = _constriction().stream.stack.AnsCoder(words)
            out = np.stack([coder.decode(m, n) for m in self._channel_models()])
        except Exception as exc:  # noqa: BLE001 - constriction raises plain exceptions on bad streams
            raise CodecError(f"ANS payload does not decode: {exc}") from None
        if not coder.is_empty():
            raise CodecError("ANS payload has words left after the declared shape: corrupted or another model")
        rest = (shape[0], *shape[2:])
        return np.moveaxis(out.reshape(self.channels, *rest), 0, 1).astype(np.uint8)

    def expected_bytes(self, codes: np.ndarray) -> float:
        """Ideal code length (bytes) of `codes` under the model (cross-entropy), for reports."""
        codes = np.asarray(codes)
        p = self.counts / self.counts.sum(1, keepdims=True)
        flat = np.moveaxis(codes, 1, 0).reshape(self.channels, -1)
        return float(-np.log2(np.take_along_axis(p, flat.astype(np.int64), 1)).sum() / 8)


class EntropyBook:
    """The entropy models of one coder (an autoencoder or the raw quantizer), by (cut, width, bits) and tag."""

    def __init__(self, models: Iterable[EntropyModel] = ()):
        self._by_key: dict[tuple[str, int, int], EntropyModel] = {}
        self._by_tag: dict[int, EntropyModel] = {}
        for m in models:
            self.add(m)

    def add(self, model: EntropyModel) -> None:
        self._by_key[(model.cut, model.width, model.bits)] = model
        self._by_tag[model.tag] = model

    def get(self, cut: str, width: int, bits: int) -> EntropyModel | None:
        return self._by_key.get((cut, int(width), int(bits)))

    def for_codes(self, cut: str, codes, bits: int) -> EntropyModel | None:
        """The model of codes (N, C, ...) at `cut` and `bits` (C: the width), or None."""
        return self.get(cut, int(codes.shape[1]), bits) if len(codes.shape) > 1 else None

    def by_tag(self, tag: int) -> EntropyModel | None:
        return self._by_tag.get(tag)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self):
        return iter(self._by_key.values())

    def to_state(self) -> dict:
        """{"cut@bitswwidth": counts tensor} for torch.save (weights_only-loadable)."""
        import torch

        return {f"{m.cut}@{m.bits}w{m.width}": torch.from_numpy(m.counts.astype(np.int64)) for m in self}

    @classmethod
    def from_state(cls, state: dict | None) -> EntropyBook:
        models = []
        for key, counts in (state or {}).items():
            cut, _, rest = key.rpartition("@")
            bits, _, width = rest.partition("w")
            models.append(EntropyModel(cut, int(width), int(bits), np.asarray(counts, dtype=np.int64)))
        return cls(models)


def model_for(coder, cut: str, codes, bits: int) -> EntropyModel | None:
    """The coder's entropy model of these codes, or None (a coder without entropy models)."""
    book = getattr(coder, "entropy", None)
    return book.for_codes(cut, codes, bits) if isinstance(book, EntropyBook) else None


class Books:
    """Several books looked up together by tag (a receiver that holds an autoencoder and a raw quantizer)."""

    def __init__(self, *books: EntropyBook | None):
        self.books = [b for b in books if b is not None]

    def by_tag(self, tag: int) -> EntropyModel | None:
        for b in self.books:
            m = b.by_tag(tag)
            if m is not None:
                return m
        return None


def fit_book(coder, features: dict, widths=None, chunk: int = 256) -> EntropyBook:
    """Entropy models of every (cut, width, bits) a coder serves, fitted on its codes of `features` ({cut: (N,
    ...) tensor}); `coder.encode(x, cut, bits, width)` gives the codes, `widths(cut)` the widths (None: one, the
    coder's only). Runs under torch.inference_mode."""
    import torch

    models = []
    with torch.inference_mode():
        for cut, x in features.items():
            for w in (widths(cut) if widths else [None]):
                for b in coder.bits:
                    codes = torch.cat([coder.encode(part, cut, b, w) for part in x.split(chunk)]).cpu().numpy()
                    models.append(EntropyModel.fit(codes, cut, b))
    return EntropyBook(models)
