"""Your data for any command: `load_data(spec, model)` -> `DataSet` (raw samples, optional labels, fingerprint).

`spec` is an image folder (one subfolder per class; or images directly in it, unlabelled), an `.npz` with `x`
(N x C x H x W or N x H x W, uint8 or float; integers for token models) and optional `y`, or
`package.module:factory` returning a torch Dataset whose items are `x` or `(x, y)`, or `photos` (`photos:train`,
`photos:test`: seeded 224 x 224 crops of real photographs, `planner.photos`). Nothing given means Fashion-MNIST
for the Fashion-MNIST zoo models (and for any model taking 1x28x28), `photos` for efficientnet-lite0. Raw samples are what an edge device
holds (uint8 pixels stay uint8, so a cloud-only plan ships bytes); `LoadedModel.preprocess` turns them into
model input. Without labels every figure is "agreement": top-1 agreement with the unsplit model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from planner.errors import DataError

_PILLOW_HINT = 'reading an image folder needs Pillow: pip install "planner[images]"'


@dataclass
class DataSet:
    """Samples as the edge holds them (`raw`, batched on dim 0), labels or None, and a content fingerprint."""

    raw: np.ndarray | torch.Tensor
    labels: torch.Tensor | None
    fingerprint: str
    source: str

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def metric(self) -> str:
        """'accuracy' with labels, else 'agreement' (top-1 agreement with the unsplit model)."""
        return "accuracy" if self.labels is not None else "agreement"

    def take(self, limit: int | None) -> DataSet:
        """The first `limit` samples (all for None), same fingerprint suffixed with the count."""
        if limit is None or limit >= len(self):
            return self
        labels = None if self.labels is None else self.labels[:limit]
        return DataSet(self.raw[:limit], labels, f"{self.fingerprint}[:{limit}]", self.source)

    def window(self, offset: int, n: int) -> DataSet:
        """Samples offset .. offset + n - 1."""
        labels = None if self.labels is None else self.labels[offset:offset + n]
        return DataSet(self.raw[offset:offset + n], labels, f"{self.fingerprint}[{offset}:{offset + n}]", self.source)

    def inputs(self, preprocess, batch_size: int | None = None):
        """Model-input batches: preprocess(raw[i:i + batch_size]) for each chunk (None: adapted to the sample
        size, `planner.config.batch_for`)."""
        from planner.config import batch_for

        batch_size = batch_size or batch_for(self.raw.shape[1:])
        for i in range(0, len(self), batch_size):
            yield preprocess(self.raw[i:i + batch_size])


def fingerprint(kind: str, raw, labels) -> str:
    """'<kind>:<N>:<first 16 hex of sha256 over samples and labels>'."""
    h = hashlib.sha256()
    arr = raw.numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
    h.update(f"{arr.dtype}|{arr.shape}|".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    if labels is not None:
        h.update(np.ascontiguousarray(np.asarray(labels, dtype=np.int64)).tobytes())
    return f"{kind}:{len(arr)}:{h.hexdigest()[:16]}"


def load_data(spec, loaded, split: str = "test", root=None, limit: int | None = None) -> DataSet:
    """The data set `spec` fitted to `loaded` (a LoadedModel); a clear error naming both shapes if it cannot be."""
    if isinstance(spec, DataSet):
        return _fit(spec, loaded).take(limit)
    if spec is None and loaded.zoo:
        from planner import zoo

        if zoo.default_data(loaded.name) == "photos":
            spec = "photos"
    if spec is None:
        return _fashion_mnist(loaded, split, root).take(limit)
    if str(spec) in ("photos", "photos:train", "photos:test"):
        from planner.photos import photos

        name, _, which = str(spec).partition(":")
        return _fit(photos(which or ("train" if split == "train" else "test"), limit), loaded)
    path = Path(str(spec))
    if path.is_dir():
        from planner import zoo

        known = loaded.zoo and loaded.name in zoo.names()
        classes = zoo.class_index(loaded.name) if known else None
        return _fit(image_folder(path, loaded.input_shape, classes), loaded).take(limit)
    if path.suffix == ".npz":
        if not path.is_file():
            raise DataError(f"data file {path} not found")
        return _fit(npz(path), loaded).take(limit)
    if ":" in str(spec) and not path.exists():
        return _fit(from_factory(str(spec), limit), loaded)
    raise DataError(f"--data {spec!r} is not an image folder, an .npz file or package.module:factory")


def _fashion_mnist(loaded, split: str, root) -> DataSet:
    fits = loaded.zoo or (tuple(loaded.input_shape) == (1, 28, 28) and loaded.input_dtype.is_floating_point)
    if not fits:
        raise DataError(f"{loaded.name} takes input {_shape(loaded.input_shape)}: give your data with --data PATH "
                        "(an image folder, an .npz or package.module:factory); Fashion-MNIST is the default only for "
                        "models taking 1x28x28")
    return fashion_mnist(split, root, channel=not loaded.zoo)


def zoo_default(name: str, split: str = "test") -> DataSet:
    """The data set a model's commands use without --data: `photos` for efficientnet-lite0, Fashion-MNIST for the
    others (and for any name that is not a zoo model)."""
    from planner import zoo

    if name in zoo.names() and zoo.default_data(name) == "photos":
        from planner.photos import photos

        return photos("train" if split == "train" else "test")
    return fashion_mnist(split)


def fashion_mnist(split: str = "test", root=None, channel: bool = False) -> DataSet:
    """A Fashion-MNIST split as uint8 N x 28 x 28 (the zoo's raw samples) or N x 1 x 28 x 28 (`channel`)."""
    from planner.data import load_arrays

    images, labels = load_arrays(split, root)
    raw = images[:, None] if channel else images
    return DataSet(raw, torch.from_numpy(labels), f"fashion-mnist/{split}:{len(labels)}", f"fashion-mnist/{split}")


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def _fit(ds: DataSet, loaded) -> DataSet:
    """Check (and where unambiguous adapt) the samples' shape to the model's input shape."""
    want, raw = tuple(loaded.input_shape), ds.raw
    got = tuple(raw.shape[1:])
    single = len(want) == 3 and want[0] == 1
    if loaded.zoo and single and got in (want, want[1:]):
        raw = raw[:, 0] if got == want else raw  # the zoo preprocessing takes N x H x W uint8 images
    elif not loaded.zoo and single and got == want[1:]:
        raw = raw[:, None]
    elif got != want:
        raise DataError(f"data {ds.source} has samples of shape {_shape(got)} but {loaded.name} takes "
                        f"{_shape(want)} (--input-shape)")
    is_int = (raw.dtype.is_floating_point is False) if isinstance(raw, torch.Tensor) else \
        np.issubdtype(raw.dtype, np.integer)
    if not loaded.input_dtype.is_floating_point and not is_int:
        raise DataError(f"data {ds.source} holds floats but {loaded.name} takes integer input (--input-dtype int64)")
    return DataSet(raw, ds.labels, ds.fingerprint, ds.source)


def npz(path: Path) -> DataSet:
    """An .npz with `x` (samples) and optional `y` (integer labels)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f:
                raise DataError(f"{path}: no array 'x' (found {', '.join(f.files) or 'nothing'})")
            x = f["x"]
            y = f["y"] if "y" in f else None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{path}: x has shape {x.shape}; expected N samples along dim 0")
    if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{path}: x has dtype {x.dtype}; expected uint8, float or integer")
    if np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    elif x.dtype != np.uint8:
        x = x.astype(np.int64)
    labels = _labels(y, len(x), str(path))
    return DataSet(x, labels, fingerprint(f"npz:{path.name}", x, labels), str(path))


def _labels(y, n: int, source: str) -> torch.Tensor | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: labels y must be {n} integers, got shape {y.shape} dtype {y.dtype}")
    return torch.from_numpy(y.astype(np.int64))


def image_folder(path: Path, input_shape, class_index: dict[str, int] | None = None) -> DataSet:
    """PNG/JPEG files, one subfolder per class (sorted names -> labels 0..K-1; or, when every subfolder's name is
    in `class_index`, e.g. ImageNet WordNet ids, the model's own class indices) or all in `path` (no labels),
    converted to the model's C x H x W (C = 1: greyscale, 3: RGB) as uint8."""
    from planner.images import IMAGE_SUFFIXES, fit

    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise DataError(f"an image folder feeds models taking Cx H x W with C = 1 or 3, not {_shape(input_shape)}")
    try:
        from PIL import Image
    except ImportError:
        raise DataError(_PILLOW_HINT) from None
    is_image = lambda p: p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES  # noqa: E731
    classes = sorted(d for d in path.iterdir() if d.is_dir())
    index = {d: k for k, d in enumerate(classes)}
    if class_index and classes and all(d.name in class_index for d in classes):
        index = {d: class_index[d.name] for d in classes}
    files = [(f, index[d]) for d in classes for f in sorted(filter(is_image, d.iterdir()))]
    labelled = bool(files)
    if not labelled:
        files = [(f, -1) for f in sorted(filter(is_image, path.iterdir()))]
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path} or its class subfolders")
    c, h, w = input_shape
    out = np.empty((len(files), c, h, w), dtype=np.uint8)
    for i, (f, _) in enumerate(files):
        try:
            with Image.open(f) as img:
                img = img.convert("L" if c == 1 else "RGB")
                if img.size != (w, h):
                    img = fit(img, h, w)
                a = np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {f}: {exc}") from None
        out[i] = a[None] if c == 1 else a.transpose(2, 0, 1)
    labels = torch.tensor([k for _, k in files]) if labelled else None
    return DataSet(out, labels, fingerprint(f"images:{path.name}", out, labels), str(path))


def from_factory(spec: str, limit: int | None = None) -> DataSet:
    """`package.module:factory` returning a Dataset of `x` or `(x, y)` items, materialized (first `limit`)."""
    from planner.modelspec import import_object

    factory = import_object(spec, "data factory")
    try:
        ds = factory()
        n = len(ds) if limit is None else min(limit, len(ds))
        items = [ds[i] for i in range(n)]
    except Exception as exc:  # noqa: BLE001 - the user's dataset failed: one line
        raise DataError(f"data factory {spec} failed: {type(exc).__name__}: {exc}") from None
    if not items:
        raise DataError(f"data factory {spec} returned an empty data set")
    pairs = isinstance(items[0], (tuple, list))
    xs = [torch.as_tensor(it[0] if pairs else it) for it in items]
    if len({tuple(x.shape) for x in xs}) != 1:
        raise DataError(f"data factory {spec}: samples have different shapes")
    x = torch.stack(xs)
    x = x.float() if x.is_floating_point() else x
    labels = torch.tensor([int(it[1]) for it in items]) if pairs and len(items[0]) > 1 else None
    return DataSet(x, labels, fingerprint(f"factory:{spec}", x, labels), spec)
