"""Fashion-MNIST from the Debian package `dataset-fashion-mnist` (IDX files), read with numpy.

No torchvision: the IDX format is a 4-byte magic, big-endian dimension sizes, then raw uint8 data.
Splits: `train` and `val` are a fixed, seeded partition of the 60,000 training images; `test` is the
10,000-image test set.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planner.errors import DataError

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MEAN = 0.2860
STD = 0.3530
VAL_SIZE = 5000
SPLIT_SEED = 0

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801


def read_idx(path: str | os.PathLike, expected_magic: int) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a uint8 array, validating magic and length."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read or decompress ({exc}); the file is truncated or corrupt") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise DataError(
            f"{path}: declares shape {dims} ({count} bytes of data) but holds {len(raw) - header}: truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).exists():
            return root / name
    raise DataError(
        f"Fashion-MNIST file {stem}(.gz) not found under {root}. Install the Debian package: "
        f"`apt-get install -y {DEBIAN_PACKAGE}`, or pass root= the folder holding the IDX files."
    )


def load_arrays(split: str = "train", root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8 images (N, 28, 28) and int64 labels of `train`, `val`, `test` or `full-train`."""
    root = Path(root or os.environ.get("PLANNER_DATA_ROOT") or DEFAULT_ROOT)
    if split not in ("train", "val", "test", "full-train"):
        raise DataError(f"unknown split {split!r}; choose train, val, test or full-train")
    files = _FILES["test" if split == "test" else "train"]
    images = read_idx(_find(root, files[0]), _IMAGE_MAGIC)
    labels = read_idx(_find(root, files[1]), _LABEL_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{root}: {len(images)} images but {len(labels)} labels")
    if split in ("train", "val"):
        order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
        idx = order[VAL_SIZE:] if split == "train" else order[:VAL_SIZE]
        idx = np.sort(idx)
        images, labels = images[idx], labels[idx]
    return images, labels


def normalize(images: np.ndarray):
    """uint8 (N, 28, 28) -> normalized float32 torch tensor (N, 1, 28, 28)."""
    import torch

    x = torch.from_numpy(images.astype(np.float32)).div_(255.0)
    return x.sub_(MEAN).div_(STD).unsqueeze(1)


@dataclass
class FashionMNIST:
    """An in-memory split as a torch-style Dataset: item -> (normalized image tensor, label)."""

    images: np.ndarray
    labels: np.ndarray
    split: str = "train"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return normalize(self.images[i: i + 1])[0], int(self.labels[i])

    def tensors(self, limit: int | None = None):
        """All (or the first `limit`) images and labels as tensors, for fast batched evaluation."""
        import torch

        n = len(self) if limit is None else min(limit, len(self))
        return normalize(self.images[:n]), torch.from_numpy(self.labels[:n])


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> FashionMNIST:
    """Load a Fashion-MNIST split (`train`, `val`, `test`) as a Dataset."""
    images, labels = load_arrays(split, root)
    return FashionMNIST(images, labels, split)


def loader(split: str = "test", batch_size: int = 256, shuffle: bool = False, root=None,
           limit: int | None = None, seed: int = 0):
    """A DataLoader over a split; `limit` keeps the first N images (after the fixed split)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    ds = load_fashion_mnist(split, root)
    x, y = ds.tensors(limit)
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=gen)


def as_loader(data, batch_size: int = 256):
    """Accept a split name, a Dataset, a DataLoader or an (x, y) pair, and return an iterable of batches."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    if data is None or isinstance(data, str):
        return loader(data or "test", batch_size=batch_size)
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return DataLoader(torch.utils.data.TensorDataset(*data), batch_size=batch_size)
    if isinstance(data, FashionMNIST):
        return DataLoader(torch.utils.data.TensorDataset(*data.tensors()), batch_size=batch_size)
    if isinstance(data, Dataset) or hasattr(data, "__getitem__"):
        return DataLoader(data, batch_size=batch_size)
    raise DataError(f"cannot use {type(data).__name__} as data: pass a split name, Dataset, DataLoader or (x, y)")
