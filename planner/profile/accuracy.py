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
    ae, quant = pipeline.ae, pipeline.quantizer
    settings = {c: _settings(ae, quant, c, bits) for c in inner}
    correct = {"backbone": 0, "cuts": {c: dict.fromkeys(settings[c], 0) for c in inner}}
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
                for key in settings[c]:
                    correct["cuts"][c][key] += int((tail(_rebuild(ae, quant, feature, c, key)).argmax(1) == yb).sum())
    n = len(y)
    pct = lambda k: round(100.0 * k / n, 3)  # noqa: E731
    cuts = {}
    for c, counts in correct["cuts"].items():
        entry: dict = {"float16": pct(counts[("float16",)]), "bits": {}, "widths": {}, "quant": {}}
        for key, v in counts.items():
            if key[0] == "ae" and key[1] is None:
                entry["bits"][str(key[2])] = pct(v)
            elif key[0] == "ae":
                entry["widths"].setdefault(str(key[1]), {})[str(key[2])] = pct(v)
            elif key[0] == "quant":
                entry["quant"][str(key[2])] = pct(v)
        cuts[c] = entry
    table = {
        "model": pipeline.name, "autoencoder": pipeline.ae_id, "quantizer": pipeline.quant_id,
        "weights_sha256": pipeline.weights_sha256, "data": data.fingerprint, "metric": data.metric, "n": n,
        "backbone": pct(correct["backbone"]), "cuts": cuts,
    }
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    return table


def _settings(ae, quant, cut: str, bits: list[int]) -> list[tuple]:
    """The ways to send `cut` whose accuracy is measured: ("float16",), ("ae", width or None, b), ("quant", None, b)."""
    out: list[tuple] = [("float16",)]
    if ae is not None and cut in ae.cuts:
        widths = ae.widths(cut)
        out += [("ae", None if w == widths[-1] else w, b) for w in widths for b in bits]
    if quant is not None and cut in quant.cuts:
        out += [("quant", None, b) for b in quant.bits]
    return out


def _rebuild(ae, quant, feature: torch.Tensor, cut: str, key: tuple) -> torch.Tensor:
    """The feature as the cloud gets it back for one setting."""
    if key[0] == "float16":
        return feature.half().float()
    coder, width, b = (ae, key[1], key[2]) if key[0] == "ae" else (quant, None, key[2])
    return coder.decode(coder.encode(feature, cut, b, width), cut, b)


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
    from planner.compress import codec

    y = targets(pipeline.model, data, pipeline.input_tensor, batch_size)
    correct = dict.fromkeys(formats, 0)
    with torch.inference_mode():
        for i in range(0, len(y), batch_size):
            raw = data.raw[i:i + batch_size]
            for fmt in formats:
                pixels = codec.decode(pipeline.input_payload(raw, fmt)).array
                correct[fmt] += int((pipeline.model(pipeline.input_tensor(pixels)).argmax(1) == y[i:i + len(raw)]).sum())
    table = {fmt: round(100.0 * k / len(y), 3) for fmt, k in correct.items()}
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    return table
