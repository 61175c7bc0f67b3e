"""Accuracy of every (cut, bits) candidate through the deployment path (integer codes, not fake-quant).

Accuracy does not depend on the device, so it is computed once and cached on disk, keyed by what it does
depend on: the model's weights (sha256 of the state_dict), the autoencoder's id (its file hash), the data
fingerprint, the image limit and the bitwidths; re-profiling another device reads the cache. Data without
labels gives top-1 agreement with the unsplit model instead (`"metric": "agreement"`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch


def cache_dir() -> Path:
    return Path(os.environ.get("PLANNER_CACHE") or Path.home() / ".cache" / "planner") / "accuracy"


def cache_key(model: str, weights_sha256: str | None, ae_id: str | None, data: str, limit: int | None,
              bits: list[int]) -> str:
    """What an accuracy table depends on, as one string (also the cache file's name)."""
    return (f"{model}__w{(weights_sha256 or 'unknown')[:16]}__{ae_id or 'raw'}__{data}__{limit or 'all'}__"
            f"{'-'.join(map(str, bits))}")


def _cache_path(key: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key)
    if len(name) > 200:
        name = name[:150] + hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / (name + ".json")


def accuracy_table(pipeline, bits: list[int], limit: int | None = None, use_cache: bool = True,
                   progress: bool = False, batch_size: int = 500, data=None) -> dict:
    """{"backbone": %, "n": images, "metric": "accuracy"|"agreement", "cuts": {cut: {"float16": %, "bits":
    {b: %}}}} on `data` (a planner.datasets.DataSet; default: the Fashion-MNIST test set)."""
    from planner.evaluate import targets

    if data is None:
        from planner.datasets import fashion_mnist

        data = fashion_mnist("test")
    data = data.take(limit)
    key = cache_key(pipeline.name, pipeline.weights_sha256, pipeline.ae_id, data.fingerprint, limit, bits)
    path = _cache_path(key)
    if use_cache and path.exists():
        return json.loads(path.read_text())
    x = torch.cat(list(data.inputs(pipeline.input_tensor, batch_size)))
    y = targets(pipeline.model, data, pipeline.input_tensor, batch_size)
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
        "model": pipeline.name, "autoencoder": pipeline.ae_id, "weights_sha256": pipeline.weights_sha256,
        "data": data.fingerprint, "metric": data.metric, "n": n, "backbone": pct(correct["backbone"]),
        "cuts": {cid: {"float16": pct(e["float16"]),
                       "bits": {str(b): pct(v) for b, v in e["bits"].items() if cid in served}}
                 for cid, e in correct["cuts"].items()},
    }
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    return table
