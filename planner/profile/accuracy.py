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
                   progress: bool = False, batch_size: int | None = None, data=None, all_cuts: bool = False,
                   save_to_card: bool = False) -> dict:
    """{"backbone": %, "n": images scored, "n_all": images, "metric": "accuracy"|"agreement",
    "confident_threshold": p or None, "cuts": {cut: {"float16": %, "bits": {b: %} (widest width), "widths": {w:
    {b: %}} (narrower), "quant": {b: %} (raw quantizer), "all": {setting: %}, "top5": {setting: %}}}} on `data`
    (a planner.datasets.DataSet; default: the Fashion-MNIST test set). Without labels the figures plans use are
    top-1 agreement on the samples the unsplit model is confident about (`evaluate.reference`); "all" keeps the
    plain agreement and "top5" whether the unsplit top-1 is within the split's top 5. Cuts that only repeat their neighbour
    (`Cut.duplicate`) are left out unless `all_cuts`; `batch_size` None adapts to the input size."""
    from planner.config import batch_for
    from planner.evaluate import reference

    if data is None:
        from planner.datasets import zoo_default

        data = zoo_default(pipeline.name)
    data = data.take(limit)
    key = cache_key(pipeline.name, pipeline.weights_sha256, pipeline.ae_id, data.fingerprint, limit, bits,
                    pipeline.quant_id) + ("__all-cuts" if all_cuts else "")
    if data.labels is None:
        key += f"__conf{_threshold()}"  # agreement on the confident samples (older tables: on all of them)
    batch_size = batch_size or batch_for(pipeline.input_shape)
    path, card = _cache_path(key), card_path(pipeline)
    if use_cache and path.exists():  # measured here before: the same key (model, autoencoder, data digests)
        cached = json.loads(path.read_text())
        if save_to_card:
            store_in_card(card, key, cached)
        return cached
    carried = card_table(card, key) if use_cache else None
    if carried is not None:  # measured where the autoencoder was made: same model, autoencoder and data digests
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(carried, indent=1))
        return carried
    ref = reference(pipeline.model, data, pipeline.input_tensor, batch_size)
    y, scored = ref["target"], ref["scored"]
    inner = [c.id for c in pipeline.cuts if not c.trivial and (all_cuts or not getattr(c, "duplicate", False))]
    settings = {c: _settings(pipeline, c, bits) for c in inner}
    # per setting: [top-1 right on the scored samples, top-1 right on all, target within the top 5 on all]
    counts = {c: [[0, 0, 0] for _ in settings[c]] for c in inner}
    backbone = 0
    batches = range(0, len(y), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"accuracy {pipeline.name}", leave=False)
    with torch.inference_mode():
        for i in batches:
            xb = pipeline.input_tensor(data.raw[i:i + batch_size])
            yb, sb = y[i:i + batch_size], scored[i:i + batch_size]
            backbone += int(((pipeline.model(xb).argmax(1) == yb) & sb).sum())
            for c in inner:
                head, tail = pipeline.split(c)
                feature = head(xb)
                for k, (coder, spec) in enumerate(settings[c]):
                    _count(counts[c][k], tail(coder.reconstruct(pipeline, feature, spec)), yb, sb)
    n, n_all = int(scored.sum()), len(y)
    pct = lambda k, total=None: round(100.0 * k / max(total or n, 1), 3)  # noqa: E731
    cuts = {c: _entry(settings[c], per, pct, n_all) for c, per in counts.items()}
    table = {
        "model": pipeline.name, "autoencoder": pipeline.ae_id, "quantizer": pipeline.quant_id,
        "weights_sha256": pipeline.weights_sha256, "data": data.fingerprint, "metric": data.metric, "n": n,
        "n_all": n_all, "confident_threshold": None if data.labels is not None else _threshold(),
        "backbone": pct(backbone), "cuts": cuts,
    }
    table["key"] = key
    return _keep(table, path, card, save_to_card, use_cache)


def _threshold() -> float:
    from planner.config import CONFIDENT_P

    return CONFIDENT_P


def _count(acc: list[int], logits: torch.Tensor, target: torch.Tensor, scored: torch.Tensor) -> None:
    right = logits.argmax(1) == target
    acc[0] += int((right & scored).sum())
    acc[1] += int(right.sum())
    acc[2] += int((logits.topk(min(5, logits.shape[1]), 1).indices == target[:, None]).any(1).sum())


def _entry(settings: list[tuple], per: list, pct, n_all: int) -> dict:
    """One cut's row: the figure plans use per setting (accuracy, or agreement on the confident samples), and
    beside it "all" (top-1 on every sample: plain agreement) and "top5" (the target within the top 5), keyed by
    the candidate's argument ("add_3@4w8", "add_3@q4", "add_3@float16")."""
    entry: dict = {"bits": {}, "widths": {}, "quant": {}, "all": {}, "top5": {}}
    for (coder, spec), (scored, everyone, top5) in zip(settings, per, strict=True):
        put(entry, coder.accuracy_key(spec), pct(scored))
        entry["all"][spec.arg], entry["top5"][spec.arg] = pct(everyone, n_all), pct(top5, n_all)
    return entry


def card_path(pipeline) -> Path | None:
    """The JSON card beside the pipeline's autoencoder file, or None (no autoencoder, or not from a file)."""
    ae_file = getattr(pipeline.ae, "path", None)
    return Path(ae_file).with_suffix(".json") if ae_file else None


def _keep(table: dict, path: Path, card: Path | None, save_to_card: bool, use_cache: bool) -> dict:
    """Keep a table (its `key` set) where it is asked for: the autoencoder's card, the local cache file."""
    if save_to_card:
        store_in_card(card, table["key"], table)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    return table


def card_table(card: Path | None, key: str) -> dict | None:
    """The accuracy table the autoencoder's card carries for exactly `key` (the model's weights, the
    autoencoder's file, the quantizer, the data's fingerprint, the limit and the bits), else None. A card whose
    tables were measured under other digests is never reused: the caller re-measures (and this says so)."""
    if card is None or not card.is_file():
        return None
    try:
        tables = json.loads(card.read_text()).get("accuracy_tables") or {}
    except (OSError, ValueError):
        return None
    if key in tables:
        return tables[key]
    if tables:
        import sys

        print(f"accuracy: the card {card.name} carries tables for other model/autoencoder/data digests, not "
              f"{key}: measuring", file=sys.stderr)
    return None


def store_in_card(card: Path | None, key: str, table: dict) -> None:
    """Add `table` under `key` to the autoencoder's card ("accuracy_tables"), so that `planner profile` and
    `planner demo` on another machine reuse it instead of measuring again."""
    from planner.errors import ProfileError

    if card is None or not card.is_file():
        raise ProfileError("--save-accuracy needs an autoencoder file with its JSON card beside it")
    doc = json.loads(card.read_text())
    doc.setdefault("accuracy_tables", {})[key] = table
    card.write_text(json.dumps(doc, indent=2) + "\n")


def _settings(pipeline, cut: str, bits: list[int]) -> list[tuple]:
    """The (coder, candidate) pairs at `cut` whose accuracy is measured: the raw float16 feature and every coded
    candidate (the autoencoder's at `bits`)."""
    out = [(coder_for(spec), spec) for spec in [CandidateSpec.raw(cut, "float16")]]
    return out + [(coder, spec) for coder, spec in coded_settings(pipeline, cut)
                  if coder.kind != CandidateKind.SPLIT or spec.bits in bits]


def input_accuracy(pipeline, formats, limit: int | None = None, use_cache: bool = True, batch_size: int | None = None,
                   data=None, save_to_card: bool = False) -> dict:
    """The input sent as a lossy image file ('jpeg90', ...): the whole model on the pixels the cloud decodes, scored
    as `accuracy_table` scores the cuts (labels; else agreement on the samples the unsplit model is confident
    about, with plain agreement ("all") and top-5 containment beside it). {"formats": {fmt: %}, "all": {fmt: %},
    "top5": {fmt: %}, "n", "n_all", "metric", "confident_threshold", "key"}. Its own key (model weights, data,
    limit, formats), cached, and carried by the autoencoder's card like the cuts' table (`save_to_card`), so adding
    formats never re-measures the cuts and a fresh machine re-measures neither."""
    from planner.config import batch_for
    from planner.evaluate import reference

    formats = list(formats)
    if not formats:
        return {"formats": {}, "all": {}, "top5": {}}
    if data is None:
        from planner.datasets import zoo_default

        data = zoo_default(pipeline.name)
    data = data.take(limit)
    key = cache_key(pipeline.name, pipeline.weights_sha256, "input-formats", data.fingerprint, limit, [],
                    "-".join(formats))
    if data.labels is None:
        key += f"__conf{_threshold()}"
    path, card = _cache_path(key), card_path(pipeline)
    table = (json.loads(path.read_text()) if path.exists() else card_table(card, key)) if use_cache else None
    if not isinstance(table, dict) or not isinstance(table.get("formats"), dict):
        table = _input_table(pipeline, formats, data, batch_size or batch_for(pipeline.input_shape), reference)
        table["key"] = key
    return _keep(table, path, card, save_to_card, use_cache)


def _input_table(pipeline, formats: list[str], data, batch_size: int, reference) -> dict:
    ref = reference(pipeline.model, data, pipeline.input_tensor, batch_size)
    y, scored = ref["target"], ref["scored"]
    specs = {fmt: CandidateSpec.cloud_only(fmt) for fmt in formats}
    counts = {fmt: [0, 0, 0] for fmt in formats}
    with torch.inference_mode():
        for i in range(0, len(y), batch_size):
            raw = data.raw[i:i + batch_size]
            for fmt, spec in specs.items():
                x = coder_for(spec).reconstruct(pipeline, raw, spec)  # the input tensor the cloud decodes
                _count(counts[fmt], pipeline.model(x), y[i:i + batch_size], scored[i:i + batch_size])
    n, n_all = int(scored.sum()), len(y)
    pct = lambda k, total: round(100.0 * k / max(total, 1), 3)  # noqa: E731
    return {"model": pipeline.name, "weights_sha256": pipeline.weights_sha256, "data": data.fingerprint,
            "metric": data.metric, "n": n, "n_all": n_all,
            "confident_threshold": None if data.labels is not None else _threshold(),
            "formats": {f: pct(c[0], n) for f, c in counts.items()},
            "all": {f: pct(c[1], n_all) for f, c in counts.items()},
            "top5": {f: pct(c[2], n_all) for f, c in counts.items()}}
