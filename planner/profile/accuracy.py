"""Accuracy of every (cut, bits) candidate through the deployment path (integer codes, not fake-quant).

Accuracy does not depend on the device, so it is computed once per (model, autoencoder weights, test subset)
and cached on disk; re-profiling another device reads the cache.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from planner.data import load_fashion_mnist


def cache_dir() -> Path:
    return Path(os.environ.get("PLANNER_CACHE") or Path.home() / ".cache" / "planner") / "accuracy"


def _cache_path(model: str, ae_id: str | None, limit: int | None, bits: list[int]) -> Path:
    key = f"{model}__{ae_id or 'raw'}__{limit or 'all'}__{'-'.join(map(str, bits))}"
    return cache_dir() / (re.sub(r"[^A-Za-z0-9._-]+", "_", key) + ".json")


def accuracy_table(pipeline, bits: list[int], limit: int | None = None, use_cache: bool = True,
                   progress: bool = False, batch_size: int = 500) -> dict:
    """{"backbone": %, "n": images, "cuts": {cut: {"float16": %, "bits": {b: %}}}} on the test set."""
    path = _cache_path(pipeline.name, pipeline.ae_id, limit, bits)
    if use_cache and path.exists():
        return json.loads(path.read_text())
    x, y = load_fashion_mnist("test").tensors(limit)
    inner = [c for c in pipeline.cuts if not c.trivial]
    served = set(pipeline.ae.cuts) if pipeline.ae is not None else set()
    correct: dict = {"backbone": 0, "cuts": {c.id: {"float16": 0, "bits": dict.fromkeys(bits, 0)} for c in inner}}
    batches = range(0, len(y), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"accuracy {pipeline.name}", leave=False)
    with torch.inference_mode():
        for i in batches:
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            correct["backbone"] += int((pipeline.model(xb).argmax(1) == yb).sum())
            for c in inner:
                head, tail = pipeline.split(c.id)
                feature = head(xb)
                entry = correct["cuts"][c.id]
                entry["float16"] += int((tail(feature.half().float()).argmax(1) == yb).sum())
                if c.id in served:
                    for b in bits:
                        rec = pipeline.ae.decode(pipeline.ae.encode(feature, c.id, b), c.id, b)
                        entry["bits"][b] += int((tail(rec).argmax(1) == yb).sum())
    n = len(y)
    pct = lambda k: round(100.0 * k / n, 3)  # noqa: E731
    table = {
        "model": pipeline.name, "autoencoder": pipeline.ae_id, "n": n, "backbone": pct(correct["backbone"]),
        "cuts": {cid: {"float16": pct(e["float16"]),
                       "bits": {str(b): pct(v) for b, v in e["bits"].items() if cid in served}}
                 for cid, e in correct["cuts"].items()},
    }
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    return table
