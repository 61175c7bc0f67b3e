"""Real photographs offline: `photos("test")` -> seeded 224 x 224 crops of natural photos that installed with the
machine's packages (nothing is downloaded at run time), as a `DataSet` without labels.

The photos: the nature set of the Debian package `mate-backgrounds` (12 photos) and its elephants, and the
sample photographs bundled with matplotlib (Grace Hopper), scikit-learn (a Chinese temple, a flower) and
scikit-image (astronaut, cat, coffee, motorcycle, rocket): 21 photographs. `scripts/setup.sh` installs them
(apt: mate-backgrounds; pip: the extra `planner[imagenet]`). The test set's photographs are never used for
training: each photograph belongs to exactly one split (`TEST_PHOTOS`), and crops are cut only from their own
split's photographs. Crops are squares of a seeded random side (35-100 % of the photo's short side) at a seeded
random position, resized to 224 x 224 (bicubic): `photos("test")` = 300 crops of 7 photographs, `photos("train")`
= 2100 crops of the other 14.

Without labels every figure is top-1 agreement with the unsplit model; `planner.metrics` adds the agreement
on the crops the unsplit model is confident about. `export_folder(split, path)` writes the crops as a flat
image folder (PNG), which `--data PATH` reads back bit for bit.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from planner.errors import DataError

MATE = Path("/usr/share/backgrounds/mate")
# name -> (where it comes from, path inside it)
SOURCES: dict[str, tuple[str, str]] = {
    **{n.lower(): ("mate-backgrounds", f"nature/{n}.jpg") for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
        "TwoWings", "Wood", "YellowFlower")},
    "elephants": ("mate-backgrounds", "abstract/Elephants.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "motorcycle": ("skimage", "data/motorcycle_left.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
}
TEST_PHOTOS = ("grace_hopper", "chelsea", "coffee", "ladybird", "yellowflower", "storm", "china")
SPLITS = {"test": (300, 1), "train": (2100, 0)}  # crops, seed
SIZE = 224
MIN_SIDE = 0.35  # crop side: at least this fraction of the photo's short side
_HOW = {"mate-backgrounds": "apt-get install mate-backgrounds (scripts/setup.sh does)",
        "matplotlib": "pip install matplotlib", "sklearn": 'pip install "planner[imagenet]"',
        "skimage": 'pip install "planner[imagenet]"'}


def _locate(name: str) -> Path | None:
    origin, rel = SOURCES[name]
    if origin == "mate-backgrounds":
        path = MATE / rel
    else:
        spec = importlib.util.find_spec(origin)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / rel
    return path if path.is_file() else None


def photo_names(split: str) -> list[str]:
    """The photographs of a split: `TEST_PHOTOS` for "test", every other one for "train" (disjoint)."""
    _check_split(split)
    return [n for n in SOURCES if (n in TEST_PHOTOS) == (split == "test")]


def photo_paths(split: str) -> list[Path]:
    """The files of a split's photographs; one line naming what to install when any is missing."""
    names = photo_names(split)
    paths = {n: _locate(n) for n in names}
    missing = sorted({SOURCES[n][0] for n, p in paths.items() if p is None})
    if missing:
        raise DataError(f"the photos data set needs {', '.join(missing)}: " + "; ".join(_HOW[m] for m in missing)
                        + " (or run scripts/setup.sh)")
    return [paths[n] for n in names]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"photos has the splits {', '.join(SPLITS)}, not {split!r}")


def _cache_file(split: str, n: int, size: int, paths: list[Path]) -> Path:
    import hashlib
    import os

    h = hashlib.sha256(f"v1|{split}|{n}|{size}|{MIN_SIDE}".encode())
    for p in paths:
        h.update(f"|{p.name}|{p.stat().st_size}".encode())
    root = Path(os.environ.get("PLANNER_CACHE") or Path.home() / ".cache" / "planner")
    return root / "photos" / f"{split}-{n}-{h.hexdigest()[:12]}.npy"


def crops(split: str = "test", n: int | None = None, size: int = SIZE) -> np.ndarray:
    """N x 3 x size x size uint8 crops of the split's photographs, round-robin over them, seeded (cached on
    disk after the first call: cutting 2100 crops from the large photos takes half a minute)."""
    _check_split(split)
    total, seed = SPLITS[split]
    n = total if n is None else n
    paths = photo_paths(split)
    cache = _cache_file(split, n, size, paths)
    if cache.is_file():
        try:
            return np.load(cache, allow_pickle=False)
        except (OSError, ValueError):
            pass
    out = _cut(paths, n, size, seed)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home: cut again next time
    return out


def _cut(paths: list[Path], n: int, size: int, seed: int) -> np.ndarray:
    from PIL import Image, ImageOps

    rng = np.random.default_rng(seed)
    images = []
    for path in paths:
        with Image.open(path) as img:
            images.append(ImageOps.exif_transpose(img).convert("RGB"))
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for i in range(n):
        img = images[i % len(images)]
        short = min(img.size)
        side = int(round(short * rng.uniform(MIN_SIDE, 1.0)))
        left = int(rng.integers(0, img.width - side + 1))
        top = int(rng.integers(0, img.height - side + 1))
        crop = img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
        out[i] = np.asarray(crop, dtype=np.uint8).transpose(2, 0, 1)
    return out


def photos(split: str = "test", n: int | None = None):
    """The crops of a split as an unlabelled `planner.datasets.DataSet` (source "photos/<split>")."""
    from planner.datasets import DataSet, fingerprint

    raw = crops(split, n)
    return DataSet(raw, None, fingerprint(f"photos/{split}", raw, None), f"photos/{split}")


def export_folder(split: str, folder: str | Path, n: int | None = None) -> Path:
    """Write a split's crops as PNG files (crop_00000.png, ...) into a flat folder; returns it."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(crops(split, n)):
        Image.fromarray(a.transpose(1, 2, 0)).save(folder / f"crop_{i:05d}.png")
    return folder
