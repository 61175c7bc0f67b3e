"""The frozen backbone's work, done once: features at every served cut and the teacher's logits, on disk.

Training an autoencoder against a frozen backbone used to run the whole backbone on every step. A
`FeatureCache` runs it once over the training images and keeps, per served cut, a float16 memory-mapped array
(rows x feature shape) and the teacher's float32 logits; training then reads batches of rows (RAM stays bounded:
the arrays are `np.memmap`s, pages come and go with the OS's cache), so a step costs only the autoencoder and
the tail. A cache lives in `<root>/<key>/`, where the key is a digest of

    the model (its weights' sha256, its traced graph's code, its input shape and dtype),
    the data (sha256 of the image tensor's bytes, and which rows were cached),
    the cuts (id, shape, producer, graph index of each), the storage dtype and CACHE_VERSION,

so any change of model, data or cuts gives another key: a mismatch never reuses (the stored `meta.json` is
compared field by field on open, too). A cache is built in a temporary folder and renamed when complete, so an
interrupted build is never read. Rows are stored in a seeded random order, so a training batch is a contiguous
window of rows (a sequential read, not one seek per image). When the features of every training image would exceed `max_bytes`, a seeded
subset of rows is cached (and trained on); the card records how many.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from planner.errors import CompressError

CACHE_VERSION = 1
FP16_MAX = 65504.0
DEFAULT_CACHE_BYTES = 4 << 30  # features of at most 4 GiB per cache on disk (a seeded subset of rows beyond)
DEFAULT_CHUNK_BYTES = 256 << 20  # activations of one backbone pass while building (the batch adapts to it)
CACHE_ENV = "PLANNER_FEATURE_CACHE"


def default_root() -> Path:
    """Where caches live: $PLANNER_FEATURE_CACHE, else runs/featcache under the working directory."""
    return Path(os.environ.get(CACHE_ENV) or Path("runs") / "featcache")


def tensor_digest(x: torch.Tensor, chunk_rows: int = 4096) -> str:
    """sha256 of a tensor's dtype, shape and bytes (row chunks: no full copy of a large tensor)."""
    h = hashlib.sha256(f"{x.dtype}|{tuple(x.shape)}|".encode())
    flat = x.detach().cpu()
    for part in (flat.split(chunk_rows) if flat.dim() else [flat]):
        h.update(part.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_digest(backbone) -> str:
    """Which function the cached features are of: weights, traced graph code (or module repr), input spec."""
    from planner.modelspec import state_sha256

    gm = backbone.part.gm
    code = gm.code if gm is not None else repr(backbone.model)
    ex = backbone.part.example
    text = json.dumps([state_sha256(backbone.model), code, list(ex.shape[1:]), str(ex.dtype)])
    return hashlib.sha256(text.encode()).hexdigest()


def cut_digests(cuts: Sequence) -> list[dict]:
    return [{"id": c.id, "shape": list(c.shape), "producer": c.producer, "index": c.index} for c in cuts]


def per_sample_activation_values(backbone, from_cut: str | None = None) -> int:
    """Values of every tensor the backbone makes per sample (from `from_cut` on: the tail's), to size batches."""
    cuts = list(backbone.part.cuts)
    start = next((i for i, c in enumerate(cuts) if c.id == from_cut), 0) if from_cut else 0
    return max(1, sum(math.prod(c.shape) for c in cuts[start:] if c.shape))


def adapt_batch(wanted: int, per_sample_bytes: int, budget_bytes: int, floor: int = 4) -> int:
    """`wanted`, lowered so that a batch's activations fit `budget_bytes` (never below `floor`)."""
    return int(max(min(floor, wanted), min(wanted, budget_bytes // max(1, per_sample_bytes))))


@dataclass
class FeatureCache:
    """Cached rows: `rows[i]` is the index in the training tensor of cached row i."""

    root: Path
    meta: dict
    rows: np.ndarray
    logits: np.ndarray
    feats: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def key(self) -> str:
        return self.root.name

    def teacher(self, idx: np.ndarray | slice, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.from_numpy(np.array(self.logits[idx], dtype=np.float32)).to(device)  # a copy: memmaps are read-only

    def feature(self, cut: str, idx: np.ndarray | slice, device: torch.device | str = "cpu") -> torch.Tensor:
        """Rows `idx` of one cut as float32 on `device`. A slice (a window of the shuffled rows) is one
        sequential read: what training uses; scattered rows cost a disk seek each when the OS has not cached them."""
        if cut not in self.feats:
            raise CompressError(f"feature cache {self.key} has no cut {cut!r}; cached: {', '.join(self.feats)}")
        return torch.from_numpy(np.array(self.feats[cut][idx])).to(device).float()

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.feats.values()) + self.logits.nbytes


def describe_key(backbone, images: torch.Tensor, rows: np.ndarray) -> dict:
    """The fields a cache's key is the digest of (also stored in its meta.json)."""
    return {"version": CACHE_VERSION, "dtype": "float16", "model": model_digest(backbone),
            "data": tensor_digest(images), "rows": hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest(),
            "n_rows": int(len(rows)), "cuts": cut_digests(backbone.cuts)}


def choose_rows(n: int, per_image_bytes: int, max_bytes: int, seed: int = 0) -> np.ndarray:
    """The training-image index of each cached row: every image when they fit `max_bytes`, else a seeded subset,
    in a seeded random order, so that any contiguous window of rows is a random batch (read sequentially)."""
    cap = max(1, max_bytes // max(1, per_image_bytes))
    gen = torch.Generator().manual_seed(seed + 7)
    return torch.randperm(n, generator=gen)[:cap].numpy().astype(np.int64)


def open_or_build(backbone, images: torch.Tensor, root: str | Path | None = None, *,
                  max_bytes: int = DEFAULT_CACHE_BYTES, chunk_bytes: int = DEFAULT_CHUNK_BYTES, seed: int = 0,
                  device: torch.device | str = "cpu", progress: bool = False) -> FeatureCache:
    """The cache of `backbone`'s features over `images` at its served cuts: opened when one with the same key
    exists under `root`, else built (once) and then opened read-only."""
    per_image = sum(math.prod(c.shape) for c in backbone.cuts) * 2
    rows = choose_rows(len(images), per_image, max_bytes, seed)
    fields = describe_key(backbone, images, rows)
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
    base = Path(root) if root else default_root()
    folder = base / key
    cache = _open(folder, fields)
    if cache is not None:
        return cache
    _build(folder, backbone, images, rows, fields, chunk_bytes, device, progress)
    cache = _open(folder, fields)
    if cache is None:
        raise CompressError(f"feature cache {folder} could not be read back after building it")
    return cache


def _open(folder: Path, fields: dict) -> FeatureCache | None:
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != fields:  # a digest collision or a hand-edited folder: never reuse
        return None
    try:
        rows = np.load(folder / "rows.npy")
        logits = np.load(folder / "logits.npy", mmap_mode="r")
        feats = {c["id"]: np.load(folder / f"cut{i}.npy", mmap_mode="r") for i, c in enumerate(fields["cuts"])}
    except (OSError, ValueError):
        return None
    n = fields["n_rows"]
    if len(rows) != n or len(logits) != n or any(
            a.shape != (n, *c["shape"]) or a.dtype != np.float16 for a, c in zip(feats.values(), fields["cuts"],
                                                                                   strict=True)):
        return None
    return FeatureCache(folder, meta, rows, logits, feats)


@torch.no_grad()
def _build(folder: Path, backbone, images: torch.Tensor, rows: np.ndarray, fields: dict, chunk_bytes: int,
           device, progress: bool) -> None:
    from numpy.lib.format import open_memmap
    from tqdm.auto import tqdm

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        n = len(rows)
        chunk = adapt_batch(256, per_sample_activation_values(backbone) * 4, chunk_bytes, floor=1)
        feats = {c.id: open_memmap(tmp / f"cut{i}.npy", "w+", np.float16, (n, *c.shape))
                 for i, c in enumerate(backbone.cuts)}
        logits = None
        clipped = 0
        for k, start in enumerate(tqdm(range(0, n, chunk), desc="feature cache", disable=not progress)):
            sel = torch.from_numpy(rows[start:start + chunk])
            out, fs = backbone.features(images[sel].to(device))
            if logits is None:
                logits = open_memmap(tmp / "logits.npy", "w+", np.float32, (n, *out.shape[1:]))
            logits[start:start + len(sel)] = out.float().cpu().numpy()
            for cid, arr in feats.items():
                f = fs[cid].float().cpu()
                clipped += int((f.abs() > FP16_MAX).sum())
                arr[start:start + len(sel)] = f.clamp(-FP16_MAX, FP16_MAX).numpy().astype(np.float16)
                if k % 32 == 31:  # write back as we go: dirty pages do not pile up in RAM
                    arr.flush()
        for arr in [*feats.values(), logits]:
            arr.flush()
        del feats, logits
        np.save(tmp / "rows.npy", rows)
        meta = {"key": fields, "clipped_values": clipped, "chunk": chunk}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        if folder.exists():  # another process built the same key meanwhile, or a stale unreadable one
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
