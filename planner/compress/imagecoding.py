"""The input as a real client sends it: uint8 images as JPEG or WebP files (Pillow), the codec's image stages.

`encode(pixels, codec, quality)` turns a batch of uint8 images, (N, H, W) greyscale or (N, C, H, W) with C = 1 or
3, into N image files, each framed by its u32 length; `decode(stored, codec, shape, raw_len)` reads them back,
checking every file's length, format, size and channels against the header's shape *before* Pillow decodes
its pixels (so a hostile file cannot make it allocate beyond the declared shape), and returns the pixels as
bytes in the declared layout. Every failure is a `planner.CodecError`. The codec (planner.compress.codec)
frames the result: mode `uint8`, stage `jpeg`/`webp`, the quality in the header's bits byte.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np

from planner.errors import CodecError
from planner.extras import available, require
from planner.types import INPUT_CODECS, QUALITY_RANGE

_LEN = struct.Struct("<I")
_PIL_FORMAT = {"jpeg": "JPEG", "webp": "WEBP"}
_PIL_FEATURE = {"jpeg": "jpg", "webp": "webp"}


def _pil():
    return require("images", "sending the input as JPEG/WebP", CodecError)


def supported(codec: str) -> bool:
    """True when Pillow is installed here and was built with `codec` ('jpeg', 'webp')."""
    if codec not in INPUT_CODECS or not available("images"):
        return False
    from PIL import features

    return bool(features.check(_PIL_FEATURE[codec]))


def layout(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(N, C, H, W) of a batch of images of `shape`: (N, H, W) or (N, C, H, W) with C = 1 or 3."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 3:
        return shape[0], 1, shape[1], shape[2]
    if len(shape) == 4 and shape[1] in (1, 3):
        return shape
    raise CodecError(f"a JPEG/WebP input is a batch of images (N, H, W) or (N, C, H, W) with C = 1 or 3, got "
                     f"shape {shape}")


def check(codec: str, quality: int) -> None:
    lo, hi = QUALITY_RANGE
    if codec not in INPUT_CODECS:
        raise CodecError(f"unknown image codec {codec!r}; expected one of {', '.join(INPUT_CODECS)}")
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not lo <= quality <= hi:
        raise CodecError(f"{codec.upper()} quality must be an integer in {lo}..{hi}, got {quality!r}")
    if not supported(codec):
        _pil()  # names the extra when Pillow is missing
        raise CodecError(f"this Pillow was built without {codec.upper()} support")


def encode(pixels: np.ndarray, codec: str, quality: int) -> bytes:
    """A batch of uint8 images as N length-framed JPEG/WebP files (lossy, at `quality` 1..100)."""
    check(codec, quality)
    if pixels.dtype != np.uint8:
        raise CodecError(f"a JPEG/WebP input needs uint8 pixels, got dtype {pixels.dtype}: send float inputs "
                         "losslessly (cloud-only) instead")
    n, c, h, w = layout(pixels.shape)
    Image = _pil()
    images = pixels.reshape(n, c, h, w)
    out = bytearray()
    for img in images:
        hwc = np.ascontiguousarray(img[0] if c == 1 else img.transpose(1, 2, 0))
        buf = io.BytesIO()
        Image.fromarray(hwc, "L" if c == 1 else "RGB").save(buf, format=_PIL_FORMAT[codec], quality=int(quality))
        out += _LEN.pack(buf.tell()) + buf.getvalue()
    return bytes(out)


def decode(stored, codec: str, shape: tuple[int, ...], raw_len: int) -> bytes:
    """The pixels (uint8, the declared layout) of N length-framed image files; anything else raises CodecError."""
    n, c, h, w = layout(shape)
    if raw_len != n * c * h * w:
        raise CodecError(f"declared raw length {raw_len} is not {n} images of {c}x{h}x{w}")
    Image = _pil()
    view, at, out = memoryview(stored), 0, bytearray()
    for i in range(n):
        if len(view) - at < _LEN.size:
            raise CodecError(f"image {i} of {n}: truncated before its length")
        (size,) = _LEN.unpack_from(view, at)
        at += _LEN.size
        if size == 0 or size > len(view) - at:
            raise CodecError(f"image {i} of {n}: declares {size} bytes, {len(view) - at} are left")
        out += _pixels(Image, bytes(view[at:at + size]), codec, c, h, w, i)
        at += size
    if at != len(view):
        raise CodecError(f"{len(view) - at} stray bytes after the {n} images")
    return bytes(out)


def _pixels(Image, blob: bytes, codec: str, c: int, h: int, w: int, i: int) -> bytes:
    """One file's pixels as C x H x W bytes, its size and format checked before its pixels are decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(blob), formats=[_PIL_FORMAT[codec]])
            if img.size != (w, h):
                raise CodecError(f"image {i} is {img.size[0]}x{img.size[1]}, the header declares {w}x{h}")
            img = img.convert("L" if c == 1 else "RGB")
    except CodecError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CodecError(f"image {i} is not a readable {codec.upper()} file: {exc}") from None
    arr = np.asarray(img, dtype=np.uint8)
    return (arr if c == 1 else arr.transpose(2, 0, 1)).tobytes()
