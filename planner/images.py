"""What the cloud-only plan would send: real photos at the model's input size, as raw pixels, JPEG and PNG.

`input_bytes((3, 224, 224))` resizes each photo (short side to fit, then centre crop) and measures its
encoded size with Pillow. The default photo is the one matplotlib ships (`grace_hopper.jpg`); pass a folder
or a list of paths to measure your own.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Iterable
from pathlib import Path

from planner.errors import DataError
from planner.extras import require

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
JPEG_QUALITIES = (90, 75)
FORMATS = ("raw", *(f"jpeg_q{q}" for q in JPEG_QUALITIES), "png")


def _pil():
    return require("images", "measuring photo sizes", DataError)


def sample_photo() -> Path:
    """The real photograph matplotlib ships (Grace Hopper, 512x600 JPEG)."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def photo_paths(images: str | Path | Iterable[str | Path] | None = None) -> list[Path]:
    """None -> matplotlib's sample photo; a folder -> its image files (sorted); otherwise the paths given."""
    if images is None:
        return [sample_photo()]
    if isinstance(images, (str, Path)):
        path = Path(images)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
            return found
        paths = [path]
    else:
        paths = [Path(p) for p in images]
    if not paths:
        raise DataError("no images given")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"image file(s) not found: {', '.join(missing)}")
    return paths


def fit(image, height: int, width: int):
    """Scale so the image covers height x width (the short side fits), then crop the centre."""
    Image = _pil()
    scale = max(height / image.height, width / image.width)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return image.crop((left, top, left + width, top + height))


def encoded_sizes(image) -> dict[str, int]:
    """Bytes of one model-sized image as raw uint8 pixels, JPEG at each quality and PNG (Pillow defaults)."""
    sizes = {"raw": len(image.tobytes())}
    for q in JPEG_QUALITIES:
        sizes[f"jpeg_q{q}"] = _encoded_len(image, "JPEG", quality=q)
    sizes["png"] = _encoded_len(image, "PNG")
    return sizes


def _encoded_len(image, fmt: str, **options) -> int:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.tell()


def input_bytes(shape: tuple[int, ...] = (3, 224, 224),
                images: str | Path | Iterable[str | Path] | None = None) -> dict:
    """Per photo and median over photos: the bytes a cloud-only plan ships for one input of `shape` (C, H, W).

    C must be 3 (RGB) or 1 (greyscale). Returns {"shape", "photos": [{"path", "raw", "jpeg_q90", "jpeg_q75",
    "png"}], "median": {format: bytes}}.
    """
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) <= 0:
        raise DataError(f"input shape {tuple(shape)} is not an image (C, H, W) with C = 1 or 3")
    channels, height, width = (int(s) for s in shape)
    Image = _pil()
    from PIL import ImageOps

    photos = []
    for path in photo_paths(images):
        try:
            with Image.open(path) as img:
                photo = ImageOps.exif_transpose(img).convert("RGB" if channels == 3 else "L")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from None
        photos.append({"path": str(path), **encoded_sizes(fit(photo, height, width))})
    median = {f: statistics.median(p[f] for p in photos) for f in FORMATS}
    return {"shape": [channels, height, width], "photos": photos, "median": median}
