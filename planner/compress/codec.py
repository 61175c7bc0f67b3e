"""Feature codec: a b-bit code tensor or a raw feature as framed, versioned, checksummed bytes.

`encode(x, cut, bits)` packs the autoencoder's quantized latent (b-bit codes, b in 1..8), or ships a raw
feature (`float32`, `float16`) or the model input (`uint8`) for the uncompressed candidates; a lossless
stage (zlib, or zstd with the extra, or ANS under a static entropy model when the caller passes one:
`compress.entropy`) is kept only when it makes the payload smaller. The model input can instead go through a
lossy image stage (`jpeg`, `webp`: compress.imagecoding, the quality in the bits byte), as a real client sends
a photo. `decode(data)` checks
every header field against the bytes it was given and against a size cap before allocating, inflates
with a bound, never unpickles, and raises only `planner.CodecError`. Byte layout: docs/codec.md.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from planner.compress.bitpack import check_bits, pack, packed_size, unpack
from planner.errors import CodecError
from planner.extras import available, require

MAGIC = b"PLFC"
VERSION = 1  # what every payload without an entropy model is written as (byte for byte the first format)
ENTROPY_VERSION = 2  # 2: lossless "ans" exists; its header carries the entropy model's u32 tag after the options
SUPPORTED_VERSIONS = (1, 2)
MAX_DIMS = 8
MAX_CUT_BYTES = 255
MAX_U32 = 2**32 - 1
DEFAULT_MAX_DECODED_BYTES = 64 * 2**20
ZLIB_LEVEL = 6
ZSTD_LEVEL = 3

# magic, version, mode, bits, lossless, flags, ndim, cut length, reserved, crc32, raw length, stored length
_FIXED = struct.Struct("<4sBBBBBBBBIII")
FIXED_SIZE = _FIXED.size  # 24
CRC_OFFSET = 12  # the CRC covers every byte of the message except its own four
_F32 = struct.Struct("<f")

FLAG_SCALE = 0x01
FLAG_ZERO_POINT = 0x02
FLAG_RAWQUANT = 0x04  # the codes are the training-free raw quantizer's, not the autoencoder's
CODER_FLAGS = FLAG_RAWQUANT  # the flags that say which coder made the codes (planner.execution.coders reads them)
_KNOWN_FLAGS = FLAG_SCALE | FLAG_ZERO_POINT | CODER_FLAGS

MODES = ("codes", "float32", "float16", "uint8")
LOSSLESS = ("none", "zlib", "zstd", "ans", "jpeg", "webp")  # the stage byte (jpeg, webp: uint8 images, lossy)
IMAGE_STAGES = ("jpeg", "webp")
_RAW_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "uint8": np.dtype("u1")}
_NATIVE = {"codes": np.dtype(np.uint8), "float32": np.dtype(np.float32), "float16": np.dtype(np.float16),
           "uint8": np.dtype(np.uint8)}


@dataclass(frozen=True)
class FeatureHeader:
    """The validated header of an encoded feature (everything but the payload)."""

    version: int
    mode: str
    bits: int | None
    lossless: str
    cut: str
    shape: tuple[int, ...]
    scale: float | None
    zero_point: float | None
    raw_len: int
    stored_len: int
    header_len: int
    coder_flag: int = 0  # the CODER_FLAGS bits set (0: the autoencoder's codes, or a raw mode)
    entropy_tag: int | None = None  # the entropy model's tag (lossless "ans", version 2)
    quality: int | None = None  # the image stage's quality (jpeg, webp), else None

    @property
    def count(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True, eq=False)
class DecodedFeature:
    """What `decode` returns: the array (uint8 codes, or the raw feature in its dtype) and its metadata."""

    array: np.ndarray
    cut: str
    bits: int | None
    mode: str
    shape: tuple[int, ...]
    scale: float | None = None
    zero_point: float | None = None
    lossless: str = "none"
    coder_flag: int = 0  # which coder made the codes (CODER_FLAGS bits; 0: the autoencoder's)
    quality: int | None = None  # the image stage's quality (lossless "jpeg" / "webp"), else None

    def tensor(self):
        """The array as a torch tensor (shares memory; torch is imported only here)."""
        import torch

        return torch.from_numpy(self.array)

    def values(self) -> np.ndarray:
        """The feature as float32: codes map to (code - zero_point) * scale, where a missing scale means
        1 / (2**bits - 1) (codes of the unit interval) and a missing zero point 0; raw modes are cast."""
        if self.mode != "codes":
            return self.array.astype(np.float32)
        scale = self.scale if self.scale is not None else 1.0 / ((1 << self.bits) - 1)
        zero_point = self.zero_point if self.zero_point is not None else 0.0
        return ((self.array.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


# ---------------------------------------------------------------- sizes


def header_size(cut: str, ndim: int, *, scale: bool = False, zero_point: bool = False) -> int:
    """Bytes of the header for a cut id and a feature of `ndim` dims (batch included)."""
    _check_ndim(ndim)
    return FIXED_SIZE + 4 * ndim + len(_cut_bytes(cut)) + 4 * (bool(scale) + bool(zero_point))


def payload_size(shape: tuple[int, ...], bits: int | None, cut: str, *, mode: str = "codes",
                 scale: bool = False, zero_point: bool = False) -> int:
    """Exact length of `encode(..., lossless="none")` for this shape: header + ceil(n*bits/8) for codes,
    header + n * itemsize for the raw modes (pass bits=None)."""
    shape = _check_shape(shape)
    _check_mode_bits(mode, bits)
    return header_size(cut, len(shape), scale=scale, zero_point=zero_point) + _raw_len(mode, bits, math.prod(shape))


# ---------------------------------------------------------------- encode


def encode(x: Any, cut: str, bits: int | None = None, *, mode: str | None = None, scale: float | None = None,
           zero_point: float | None = None, lossless: str = "auto", level: int | None = None,
           coder_flag: int = 0, entropy=None) -> bytes:
    """Frame a feature as bytes. With `bits`, `x` holds integer codes in [0, 2**bits - 1] (mode "codes");
    without, `x` is a raw feature: "float32" (any float, cast), "float16" or "uint8" (the model input),
    inferred from the dtype unless `mode` says. `lossless`: "auto" (smallest of zlib/zstd, and of ANS when an
    `entropy` model of these codes is given, if smaller than plain), "none", "zlib", "zstd" or "ans" (needs
    `entropy`, an `EntropyModel` of this (cut, width, bits)); `level` goes to the compressor(s) (default zlib 6,
    zstd 3). For uint8 images (mode "uint8"), `lossless` "jpeg" or "webp" sends them as lossy image files at
    quality `level` (1..100). `coder_flag` (CODER_FLAGS bits, e.g. FLAG_RAWQUANT) marks which coder made the
    codes. ANS payloads are format version 2 (they carry the model's tag); all others are version 1."""
    arr = _as_array(x)
    mode = _resolve_mode(arr, bits, mode)
    cut_b = _cut_bytes(cut)
    shape = _check_shape(arr.shape)
    _check_mode_bits(mode, bits)
    flags = 0
    opt = b""
    for flag, name, value in ((FLAG_SCALE, "scale", scale), (FLAG_ZERO_POINT, "zero_point", zero_point)):
        if value is None:
            continue
        if mode != "codes":
            raise CodecError(f"{name} applies to mode 'codes' only, not {mode!r}")
        opt += _F32.pack(_check_float(name, value))
        flags |= flag
    if coder_flag:
        if coder_flag & ~CODER_FLAGS:
            raise CodecError(f"coder_flag 0x{coder_flag:02x} is not a coder flag (known: 0x{CODER_FLAGS:02x})")
        if mode != "codes":
            raise CodecError(f"a coder flag applies to mode 'codes' only, not {mode!r}")
        flags |= coder_flag
    if mode == "codes":
        raw = pack(_as_codes(arr, bits), bits)
    elif mode == "uint8":
        raw = _as_codes(arr, 8).tobytes()
    else:
        if not np.issubdtype(arr.dtype, np.floating):
            raise CodecError(f"mode {mode!r} needs a floating-point feature, got dtype {arr.dtype}")
        raw = np.ascontiguousarray(arr, dtype=_RAW_DTYPES[mode]).tobytes()
    if entropy is not None and mode != "codes":
        raise CodecError(f"an entropy model codes mode 'codes' only, not {mode!r}")
    bits_byte = bits or 0
    if lossless in IMAGE_STAGES:
        from planner.compress import imagecoding

        if mode != "uint8":
            raise CodecError(f"the {lossless} stage sends uint8 images (mode 'uint8'), not mode {mode!r}")
        method, stored, bits_byte = lossless, imagecoding.encode(_as_codes(arr, 8), lossless, level), level
    else:
        method, stored = _compress(raw, lossless, level, entropy, arr, bits)
    if len(raw) > MAX_U32 or len(stored) > MAX_U32:
        raise CodecError(f"feature of {len(raw)} bytes does not fit the format's 32-bit lengths")
    version = VERSION
    if method == "ans":
        version, opt = ENTROPY_VERSION, opt + struct.pack("<I", entropy.tag)
    fixed = _FIXED.pack(MAGIC, version, MODES.index(mode), bits_byte, LOSSLESS.index(method), flags,
                        len(shape), len(cut_b), 0, 0, len(raw), len(stored))
    head = bytearray(fixed + struct.pack(f"<{len(shape)}I", *shape) + cut_b + opt)
    crc = zlib.crc32(stored, zlib.crc32(head[CRC_OFFSET + 4:], zlib.crc32(head[:CRC_OFFSET])))
    struct.pack_into("<I", head, CRC_OFFSET, crc)
    return bytes(head) + stored


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        try:
            return x.detach().cpu().numpy()
        except (TypeError, RuntimeError) as e:
            raise CodecError(f"cannot view a tensor of dtype {x.dtype} as numpy: {e}") from None
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise CodecError(f"cannot make an array of {type(x).__name__}: {e}") from None


def _resolve_mode(arr: np.ndarray, bits: int | None, mode: str | None) -> str:
    if mode is not None:
        return mode
    if bits is not None:
        return "codes"
    if arr.dtype == np.float16:
        return "float16"
    if arr.dtype == np.uint8:
        return "uint8"
    if np.issubdtype(arr.dtype, np.floating):
        return "float32"
    raise CodecError(f"cannot infer the mode of a {arr.dtype} array: pass bits= for codes or mode=")


def _check_mode_bits(mode: str, bits: int | None) -> None:
    if mode not in MODES:
        raise CodecError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "codes":
        if bits is None:
            raise CodecError("mode 'codes' needs bits (1..8)")
        check_bits(bits)
    elif bits is not None:
        raise CodecError(f"mode {mode!r} is a raw feature and takes no bits (got {bits!r})")


def _as_codes(arr: np.ndarray, bits: int) -> np.ndarray:
    """uint8 codes from any integer array, checking the range [0, 2**bits - 1]."""
    if arr.dtype == np.uint8:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise CodecError(f"codes must be integers, got dtype {arr.dtype}: round and cast first "
                         "(e.g. .to(torch.uint8)), or encode a raw float feature without bits")
    if arr.size:
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= 1 << bits:
            raise CodecError(f"codes span [{low}, {high}], outside [0, {(1 << bits) - 1}] for {bits} bits")
    return arr.astype(np.uint8)


def _cut_bytes(cut: str) -> bytes:
    if not isinstance(cut, str) or not cut:
        raise CodecError(f"the cut id must be a non-empty string, got {cut!r}")
    try:
        raw = cut.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CodecError(f"cut id is not encodable as UTF-8: {e}") from None
    if len(raw) > MAX_CUT_BYTES:
        raise CodecError(f"cut id is {len(raw)} bytes in UTF-8, more than {MAX_CUT_BYTES}")
    return raw


def _check_ndim(ndim: int) -> None:
    if not 1 <= ndim <= MAX_DIMS:
        raise CodecError(f"a feature has 1..{MAX_DIMS} dims (batch included), got {ndim}")


def _check_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    _check_ndim(len(shape))
    if any(not 1 <= d <= MAX_U32 for d in shape):
        raise CodecError(f"every dim must be in 1..{MAX_U32} (no empty features), got shape {shape}")
    return shape


def _check_float(name: str, value: float) -> float:
    """The value as stored (float32), which must be finite, and non-zero for the scale."""
    try:
        stored = _F32.unpack(_F32.pack(float(value)))[0]
    except (TypeError, ValueError, OverflowError) as e:
        raise CodecError(f"{name} {value!r} is not a float32 number: {e}") from None
    if not math.isfinite(stored) or (name == "scale" and stored == 0.0):
        raise CodecError(f"{name} must be finite{' and non-zero' * (name == 'scale')} in float32, got {value!r}")
    return stored


def _raw_len(mode: str, bits: int | None, count: int) -> int:
    return packed_size(count, bits) if mode == "codes" else count * _RAW_DTYPES[mode].itemsize


# ---------------------------------------------------------------- lossless stage


def _compress(raw: bytes, lossless: str, level: int | None, entropy=None, codes=None,
              bits: int | None = None) -> tuple[str, bytes]:
    if lossless == "none":
        return "none", raw
    if lossless == "auto":
        best = ("none", raw)
        methods = ["zlib", "zstd"] if available("zstd") else ["zlib"]
        for method in methods + (["ans"] if entropy is not None else []):
            candidate = _compress(raw, method, level, entropy, codes, bits)
            extra = 4 if method == "ans" else 0  # an ANS payload's header carries the model's tag
            if len(candidate[1]) + extra < len(best[1]) + (4 if best[0] == "ans" else 0):
                best = candidate
        return best
    if lossless == "ans":
        if entropy is None:
            raise CodecError("lossless 'ans' needs the entropy model of these codes (entropy=...)")
        if entropy.bits != bits:
            raise CodecError(f"entropy model {entropy.cut}@{entropy.bits}w{entropy.width} is for {entropy.bits}-bit "
                             f"codes, not {bits}-bit")
        return "ans", entropy.compress(_as_codes(np.asarray(codes), bits))
    if lossless == "zlib":
        try:
            return "zlib", zlib.compress(raw, ZLIB_LEVEL if level is None else level)
        except (zlib.error, TypeError, ValueError) as e:
            raise CodecError(f"zlib cannot compress at level {level!r}: {e}") from None
    if lossless == "zstd":
        zstd = require("zstd", "the zstd lossless stage", CodecError)
        try:
            return "zstd", zstd.ZstdCompressor(level=ZSTD_LEVEL if level is None else level).compress(raw)
        except (zstd.ZstdError, TypeError, ValueError) as e:
            raise CodecError(f"zstd cannot compress at level {level!r}: {e}") from None
    raise CodecError(f"unknown lossless stage {lossless!r}; expected auto, none, zlib or zstd")


def _inflate(stored: memoryview, lossless: str, raw_len: int, shape: tuple[int, ...] = ()) -> bytes | memoryview:
    """The raw payload, never inflating more than raw_len (+1 to detect overflow) bytes."""
    if lossless == "none":
        return stored
    if lossless in IMAGE_STAGES:
        from planner.compress import imagecoding

        return imagecoding.decode(stored, lossless, shape, raw_len)
    if lossless == "zlib":
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(stored, raw_len + 1)
        except zlib.error as e:
            raise CodecError(f"zlib payload does not inflate: {e}") from None
        if len(out) > raw_len or inflater.unconsumed_tail:
            raise CodecError(f"zlib payload inflates beyond the declared raw length {raw_len}")
        if not inflater.eof:
            raise CodecError("zlib payload is truncated (the stream does not end)")
        if inflater.unused_data:
            raise CodecError(f"{len(inflater.unused_data)} stray bytes after the end of the zlib stream")
    else:
        zstd = require("zstd", "decoding this zstd-compressed payload", CodecError)
        try:
            declared = zstd.frame_content_size(stored)
            if declared not in (-1, raw_len):
                raise CodecError(f"zstd frame declares {declared} bytes, the header {raw_len}")
            out = zstd.ZstdDecompressor().decompress(stored, max_output_size=raw_len, allow_extra_data=False)
        except zstd.ZstdError as e:
            raise CodecError(f"zstd payload does not decompress: {e}") from None
    if len(out) != raw_len:
        raise CodecError(f"{lossless} payload inflates to {len(out)} bytes, the header declares {raw_len}")
    return out


# ---------------------------------------------------------------- decode


def _view(data: Any) -> memoryview:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"decode needs bytes, got {type(data).__name__}")
    try:
        view = memoryview(data).cast("B")
    except TypeError as e:
        raise CodecError(f"decode needs a contiguous byte buffer: {e}") from None
    return view


def read_header(data: bytes | bytearray | memoryview, *,
                max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES, checksum: bool = True) -> FeatureHeader:
    """Parse and validate the header, the declared sizes (against the data and the cap) and the checksum.

    `checksum=False` skips only the CRC pass over the payload: a cheap look at the declared shape (a server
    bounds the batch with it before any decoding); `decode` always verifies it."""
    view = _view(data)
    if isinstance(max_decoded_bytes, bool) or not isinstance(max_decoded_bytes, int) or max_decoded_bytes < 1:
        raise CodecError(f"max_decoded_bytes must be a positive int, got {max_decoded_bytes!r}")
    if len(view) < FIXED_SIZE:
        raise CodecError(f"truncated: {len(view)} bytes, shorter than the {FIXED_SIZE}-byte fixed header")
    magic, version, mode_id, bits, lossless_id, flags, ndim, cut_len, reserved, crc, raw_len, stored_len = (
        _FIXED.unpack_from(view))
    if magic != MAGIC:
        raise CodecError(f"wrong magic {magic!r} (expected {MAGIC!r}): not an encoded feature")
    if version not in SUPPORTED_VERSIONS:
        raise CodecError(f"unsupported format version {version} (this build reads {SUPPORTED_VERSIONS})")
    if mode_id >= len(MODES):
        raise CodecError(f"unknown mode id {mode_id}")
    mode = MODES[mode_id]
    if lossless_id >= len(LOSSLESS):
        raise CodecError(f"unknown lossless stage id {lossless_id}")
    if reserved or flags & ~_KNOWN_FLAGS:
        raise CodecError(f"reserved header bits set (flags 0x{flags:02x}, reserved byte {reserved})")
    if mode == "codes" and not 1 <= bits <= 8:
        raise CodecError(f"mode 'codes' with bits {bits}, expected 1..8")
    ans, image = _check_stage(LOSSLESS[lossless_id], version, mode, bits, flags)
    if mode != "codes" and not image and (bits or flags):
        raise CodecError(f"raw mode {mode!r} with bits {bits} / flags 0x{flags:02x}; both must be 0")
    if not 1 <= ndim <= MAX_DIMS:
        raise CodecError(f"declared {ndim} dims, expected 1..{MAX_DIMS}")
    if cut_len == 0:
        raise CodecError("empty cut id")
    n_opt = bin(flags & (FLAG_SCALE | FLAG_ZERO_POINT)).count("1")
    header_len = FIXED_SIZE + 4 * ndim + cut_len + 4 * n_opt + 4 * ans
    if len(view) < header_len:
        raise CodecError(f"truncated: {len(view)} bytes, the header alone declares {header_len}")
    shape = struct.unpack_from(f"<{ndim}I", view, FIXED_SIZE)
    if 0 in shape:
        raise CodecError(f"declared shape {shape} has an empty dim")
    count = math.prod(shape)
    decoded = count * _NATIVE[mode].itemsize
    if decoded > max_decoded_bytes:
        raise CodecError(f"declared shape {shape} decodes to {decoded} bytes, above the cap of "
                         f"{max_decoded_bytes} (max_decoded_bytes)")
    expected_raw = _raw_len(mode, bits if mode == "codes" else None, count)
    if raw_len != expected_raw:
        raise CodecError(f"declared raw length {raw_len} does not match shape {shape} in mode {mode!r}"
                         f" (expected {expected_raw})")
    lossless = LOSSLESS[lossless_id]
    if lossless == "none" and stored_len != raw_len:
        raise CodecError(f"uncompressed payload declares {stored_len} stored bytes but {raw_len} raw bytes")
    total = header_len + stored_len
    if len(view) < total:
        raise CodecError(f"truncated: {len(view)} bytes, header declares {total} ({stored_len}-byte payload)")
    if len(view) > total:
        raise CodecError(f"{len(view) - total} trailing bytes after the declared {total}-byte message")
    actual = zlib.crc32(view[CRC_OFFSET + 4:], zlib.crc32(view[:CRC_OFFSET])) if checksum else crc
    if actual != crc:
        raise CodecError(f"checksum mismatch (header says {crc:08x}, bytes give {actual:08x}): corrupted data")
    at = FIXED_SIZE + 4 * ndim
    try:
        cut = bytes(view[at:at + cut_len]).decode("utf-8")
    except UnicodeDecodeError as e:
        raise CodecError(f"cut id is not valid UTF-8: {e}") from None
    at += cut_len
    opt: dict[str, float | None] = {"scale": None, "zero_point": None}
    for flag, name in ((FLAG_SCALE, "scale"), (FLAG_ZERO_POINT, "zero_point")):
        if flags & flag:
            opt[name] = _check_float(name, _F32.unpack_from(view, at)[0])
            at += 4
    tag = struct.unpack_from("<I", view, at)[0] if ans else None
    return FeatureHeader(version, mode, bits if mode == "codes" else None, lossless, cut, tuple(shape),
                         opt["scale"], opt["zero_point"], raw_len, stored_len, header_len, flags & CODER_FLAGS,
                         tag, bits if image else None)


def _check_stage(stage: str, version: int, mode: str, bits: int, flags: int) -> tuple[bool, bool]:
    """(ANS, an image stage) for a header's stage, checked against its version, mode, bits byte and flags."""
    ans = stage == "ans"
    if ans != (version == ENTROPY_VERSION):
        raise CodecError(f"lossless stage {stage!r} in a version {version} payload (ANS payloads, "
                         f"and only they, are version {ENTROPY_VERSION})")
    if ans and mode != "codes":
        raise CodecError(f"lossless 'ans' with raw mode {mode!r}: only codes are entropy-coded")
    image = stage in IMAGE_STAGES
    if image and (mode != "uint8" or not 1 <= bits <= 100 or flags):
        raise CodecError(f"the {stage} stage needs mode 'uint8', a quality 1..100 in the bits byte "
                         f"and no flags; got mode {mode!r}, bits {bits}, flags 0x{flags:02x}")
    return ans, image


def decode(data: bytes | bytearray | memoryview, *,
           max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES, entropy=None) -> DecodedFeature:
    """Bytes from `encode` back to the array and its metadata; anything else raises CodecError. `entropy`: what
    resolves an ANS payload's model tag (an `EntropyBook`, `Books` or one `EntropyModel`); such a payload without
    the model it names is refused."""
    head = read_header(data, max_decoded_bytes=max_decoded_bytes)
    stored = _view(data)[head.header_len:]
    if head.lossless == "ans":
        array = _entropy_decode(stored, head, entropy)
    elif head.mode == "codes":
        array = unpack(_inflate(stored, head.lossless, head.raw_len), head.bits, head.count)
    else:
        raw = _inflate(stored, head.lossless, head.raw_len, head.shape)
        array = np.frombuffer(raw, _RAW_DTYPES[head.mode]).astype(_NATIVE[head.mode])
    return DecodedFeature(array.reshape(head.shape), head.cut, head.bits, head.mode, head.shape,
                          head.scale, head.zero_point, head.lossless, head.coder_flag, head.quality)


def _entropy_decode(stored: memoryview, head: FeatureHeader, entropy) -> np.ndarray:
    """The codes of an ANS payload, with the model its tag names (refused when the receiver lacks it)."""
    if entropy is None:
        raise CodecError(f"payload for cut {head.cut!r} is entropy-coded (model tag {head.entropy_tag:08x}) and "
                         "this decoder was given no entropy models: decode with the coder's models")
    model = entropy.by_tag(head.entropy_tag) if hasattr(entropy, "by_tag") else (
        entropy if entropy.tag == head.entropy_tag else None)
    if model is None:
        raise CodecError(f"payload for cut {head.cut!r} is entropy-coded with model tag {head.entropy_tag:08x}, "
                         "which this receiver does not hold (another autoencoder, quantizer or version of it)")
    if model.bits != head.bits or model.cut != head.cut:
        raise CodecError(f"entropy model tag {head.entropy_tag:08x} is for {model.cut}@{model.bits} bits, the "
                         f"payload is {head.cut}@{head.bits} bits")
    return model.decompress(stored, head.shape)
