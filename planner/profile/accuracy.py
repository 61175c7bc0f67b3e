"""Accuracy of every (cut, width, bits) candidate, and of the raw quantizer's (cut, bits), through the deployment
path (integer codes, not fake-quant).

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

from planner.execution.coders import coded_settings, coder_for, put
from planner.types import CandidateKind, CandidateSpec


def cache_dir() -> Path:
    return Path(os.environ.get("PLANNER_CACHE") or Path.home() / ".cache" / "planner") / "accuracy"


def cache_key(model: str, weights_sha256: str | None, ae_id: str | None, data: str, limit: int | None,
              bits: list[int], quant_id: str | None = None) -> str:
    """What an accuracy table depends on, as one string (also the cache file's name)."""
    return (f"{model}__w{(weights_sha256 or 'unknown')[:16]}__{ae_id or 'raw'}__{quant_id or 'noquant'}__{data}__"
            f"{limit or 'all'}__{'-'.join(map(str, bits))}")


def _cache_path(key: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key)
    if len(name) > 200:
        name = name[:150] + hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / (name + ".json")


def accuracy_table(pipeline, bits: list[int], limit: int | None = None, use_cache: bool = True,
                   progress: bool = False, batch_size: int = 500, data=None) -> dict:
    """{"backbone": %, "n": images, "metric": "accuracy"|"agreement", "cuts": {cut: {"float16": %, "bits":
    {b: %} (widest width), "widths": {w: {b: %}} (narrower), "quant": {b: %} (raw quantizer)}}} on `data` (a
    planner.datasets.DataSet; default: the Fashion-MNIST test set)."""
    from planner.evaluate import targets

    if data is None:
        from planner.datasets import fashion_mnist

        data = fashion_mnist("test")
    data = data.take(limit)
    key = cache_key(pipeline.name, pipeline.weights_sha256, pipeline.ae_id, data.fingerprint, limit, bits,
                    pipeline.quant_id)
    path = _cache_path(key)
    if use_cache and path.exists():
        return json.loads(path.read_text())
    x = torch.cat(list(data.inputs(pipeline.input_tensor, batch_size)))
    y = targets(pipeline.model, data, pipeline.input_tensor, batch_size)
    inner = [c.id for c in pipeline.cuts if not c.trivial]
    settings = {c: _settings(pipeline, c, bits) for c in inner}
    correct = {"backbone": 0, "cuts": {c: [0] * len(settings[c]) for c in inner}}
    batches = range(0, len(y), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"accuracy {pipeline.name}", leave=False)
    with torch.inference_mode():
        for i in batches:
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            correct["backbone"] += int((pipeline.model(xb).argmax(1) == yb).sum())
            for c in inner:
                head, tail = pipeline.split(c)
                feature = head(xb)
                for k, (coder, spec) in enumerate(settings[c]):
                    rebuilt = tail(coder.reconstruct(pipeline, feature, spec))
                    correct["cuts"][c][k] += int((rebuilt.argmax(1) == yb).sum())
    n = len(y)
    cuts = {}
    for c, counts in correct["cuts"].items():
        entry: dict = {"bits": {}, "widths": {}, "quant": {}}
        for (coder, spec), v in zip(settings[c], counts, strict=True):
            put(entry, coder.accuracy_key(spec), round(100.0 * v / n, 3))
        cuts[c] = entry
    table = {
        "model": pipeline.name, "autoencoder": pipeline.ae_id, "quantizer": pipeline.quant_id,
        "weights_sha256": pipeline.weights_sha256, "data": data.fingerprint, "metric": data.metric, "n": n,
        "backbone": round(100.0 * correct["backbone"] / n, 3), "cuts": cuts,
    }
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    return table


def _settings(pipeline, cut: str, bits: list[int]) -> list[tuple]:
    """The (coder, candidate) pairs at `cut` whose accuracy is measured: the raw float16 feature and every coded
    candidate (the autoencoder's at `bits`)."""
    out = [(coder_for(spec), spec) for spec in [CandidateSpec.raw(cut, "float16")]]
    return out + [(coder, spec) for coder, spec in coded_settings(pipeline, cut)
                  if coder.kind != CandidateKind.SPLIT or spec.bits in bits]


def input_accuracy(pipeline, formats, limit: int | None = None, use_cache: bool = True, batch_size: int = 100,
                   data=None) -> dict[str, float]:
    """{format: %} for the input sent as a lossy image file ('jpeg90', ...): the whole model on the pixels the
    cloud decodes, scored like `accuracy_table` (labels, else agreement). Cached apart from the cuts' table (same
    key plus the formats), so adding formats never re-measures the cuts."""
    from planner.evaluate import targets

    formats = list(formats)
    if not formats:
        return {}
    if data is None:
        from planner.datasets import fashion_mnist

        data = fashion_mnist("test")
    data = data.take(limit)
    key = cache_key(pipeline.name, pipeline.weights_sha256, "input", data.fingerprint, limit, [],
                    "-".join(formats))
    path = _cache_path(key)
    if use_cache and path.exists():
        return json.loads(path.read_text())
    y = targets(pipeline.model, data, pipeline.input_tensor, batch_size)
    correct = dict.fromkeys(formats, 0)
    specs = {fmt: CandidateSpec.cloud_only(fmt) for fmt in formats}
    with torch.inference_mode():
        for i in range(0, len(y), batch_size):
            raw = data.raw[i:i + batch_size]
            for fmt, spec in specs.items():
                x = coder_for(spec).reconstruct(pipeline, raw, spec)  # the input tensor the cloud decodes
                correct[fmt] += int((pipeline.model(x).argmax(1) == y[i:i + len(raw)]).sum())
    table = {fmt: round(100.0 * k / len(y), 3) for fmt, k in correct.items()}
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    return table
