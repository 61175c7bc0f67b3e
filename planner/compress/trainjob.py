"""Train a model's autoencoder end to end (`planner train-ae`): the data (`TrainData`, `split_data`), the feature
cache, training, recalibration and scale calibration, the weights file and its card (`train_autoencoder`,
`train_zoo_autoencoder`)."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from planner.compress.aeconfig import AEConfig
from planner.compress.aefile import save_autoencoder
from planner.compress.autoencoder import build_autoencoder
from planner.compress.backbone import (
    Backbone,
    calibrate_scales,
    entropy_features,
    evaluate,
    recalibrate_bn,
)
from planner.compress.cutselect import FEATURE_KINDS
from planner.compress.shipped import training_output
from planner.compress.train import TrainConfig, train
from planner.config import DEFAULT_BITS, DEFAULT_LATENT, DEFAULT_WIDTHS, batch_for
from planner.partition import Partitioner


# -- training runs: the recipe behind the committed weights, and the same for any model ---------------------
@dataclass
class TrainData:
    """Model-input tensors to train on and to score the card on; labels None -> distillation only, scored
    as agreement with the unsplit model."""

    x: torch.Tensor
    y: torch.Tensor | None
    val_x: torch.Tensor
    val_y: torch.Tensor | None
    fingerprint: str = ""


def train_zoo_autoencoder(model_name: str, kind: str = "shared", *, limit: int | None = None, val_limit: int = 2000,
                          **kw) -> dict:
    """Train a zoo model's autoencoder on Fashion-MNIST (train split; card scored on the validation split);
    by default it writes a new file (the committed weights only with `overwrite_shipped`). See `train_autoencoder` for the options."""
    from planner.data import load_fashion_mnist
    from planner.modelspec import load_model

    x, y = load_fashion_mnist("train").tensors(limit)
    vx, vy = load_fashion_mnist("val").tensors(val_limit)
    data = TrainData(x, y, vx, vy, f"fashion-mnist/train:{len(y)}")
    return train_autoencoder(load_model(model_name), data, kind, **kw)


def split_data(dataset, preprocess, val_fraction: float = 0.1, val_limit: int = 2000, seed: int = 0) -> TrainData:
    """A user DataSet as TrainData: a seeded hold-out (10 %, at most `val_limit`) scores the card."""
    n = len(dataset)
    n_val = min(val_limit, max(1, int(n * val_fraction))) if n > 1 else 0
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, va = order[n_val:] if n_val < n else order, order[:n_val]
    x = torch.cat(list(dataset.inputs(preprocess)))
    y = dataset.labels
    return TrainData(x[tr], None if y is None else y[tr], x[va], None if y is None else y[va], dataset.fingerprint)


def train_autoencoder(loaded, data: TrainData, kind: str = "shared", *, variant: str = "slim",
                      latent: float = DEFAULT_LATENT, max_reduction: int = 2, width: int = 32,
                      decoder_width: int = 48,
                      bits: Sequence[int] = DEFAULT_BITS, widths: Sequence[int] = DEFAULT_WIDTHS,
                      cut_ids: Sequence[str] | None = None, cfg: TrainConfig | None = None,
                      threads: int | None = None, out: str | Path | None = None, checkpoint: str | Path | None = None,
                      resume: bool = False, progress: bool = True, command: str = "",
                      stop_after: int | None = None, device: str | torch.device = "cpu",
                      feature_cache: str | Path | bool | None = None,
                      cache_bytes: int | None = None, overwrite_shipped: bool = False) -> dict:
    """Train the autoencoder of any model (a LoadedModel), recalibrate BN, score it on `data.val_*`, and write
    `<out>` plus a JSON card beside it (zoo default: runs/ae/<model>-<kind>.pt; the shipped weights only with
    `overwrite_shipped`, see `planner.compress.shipped.training_output`). `feature_cache`: a folder for the FeatureCache (None: the default, False or "none": run the
    backbone every step). Returns the card (only {"stopped_at": step, "checkpoint": path} when `stop_after`
    ended the session early)."""
    from planner.devices import resolve_device

    cfg = cfg or TrainConfig()
    if data.y is None:
        cfg = replace(cfg, ce_weight=0.0)  # no labels: distillation (and reconstruction) only
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    out = training_output(loaded.name, kind, out, zoo=loaded.zoo, overwrite_shipped=overwrite_shipped)
    out.parent.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    part = Partitioner(loaded.model, loaded.example(), loaded.leaf_modules)
    backbone = Backbone(loaded.model, loaded.example(), cut_ids, part,
                        kinds=("map",) if loaded.zoo else FEATURE_KINDS).to(dev)
    config = AEConfig.for_cuts(backbone.cuts, latent=latent, max_reduction=max_reduction, widths=tuple(widths),
                               bits=tuple(bits), variant=variant, width=width, decoder_width=decoder_width,
                               extra={"model": loaded.name, "weights_sha256": loaded.weights_sha256})
    torch.manual_seed(cfg.seed)
    ae = build_autoencoder(config, kind)
    images = data.x
    # without labels the loss has no cross-entropy term (ce_weight 0): no backbone pass for labels it never reads
    labels = data.y if data.y is not None else torch.zeros(len(images), dtype=torch.long)
    cache, cache_info = _open_cache(backbone, images, feature_cache, cache_bytes, cfg.seed, dev, progress)
    calibrate_scales(ae, backbone, images, seed=cfg.seed, cache=cache, device=dev)
    ae.to(dev)
    ckpt = Path(checkpoint) if checkpoint else Path("runs") / "ae" / f"{out.stem}.ckpt"
    result = train(ae, backbone, images, labels, cfg, checkpoint=ckpt, resume=resume, progress=progress,
                   stop_after=stop_after, cache=cache, device=dev)
    if result.steps_done < cfg.steps:
        return {"stopped_at": result.steps_done, "checkpoint": str(ckpt)}
    recal_start = time.perf_counter()
    # round the weights to the precision they are stored in before measuring BN statistics
    with torch.no_grad():
        for p in ae.parameters():
            p.copy_(p.half().float())
    n = len(images) if cache is None else cache.n
    # the batch adapts to the input size (as many samples in more batches); a small data set is averaged over
    # about once, not 20 times
    batch = min(batch_for(images.shape[1:], cfg.recal_batch_size), n)
    batches = math.ceil(cfg.recal_batches * cfg.recal_batch_size / batch)
    recalibrate_bn(ae, backbone, images, min(batches, math.ceil(n / batch)), batch, cfg.seed,
                   cache=cache, device=dev)
    recal_seconds = time.perf_counter() - recal_start
    ae.cpu().fit_entropy(entropy_features(backbone, images, cache, cfg.seed))
    sha = save_autoencoder(ae, out)
    card = _card(loaded, data, kind, ae, config, cfg, out, sha, backbone, result, command, dev)
    card["entropy_models"] = len(ae.entropy)
    card["train"].update(recalibrate_seconds=round(recal_seconds, 1), device=str(dev), feature_cache=cache_info,
                         updates_per_hour=round(3600 * result.steps_done / max(result.seconds, 1e-9)))
    card["wall_seconds"] = round(time.perf_counter() - wall, 1)
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def default_out(model_name: str, kind: str = "shared") -> Path:
    """Where `train-ae` writes a zoo model's autoencoder by default: beside the runs, not over the shipped file."""
    return training_output(model_name, kind)


def _open_cache(backbone: Backbone, images: torch.Tensor, where, cache_bytes: int | None, seed: int, device,
                progress: bool) -> tuple[object | None, dict | None]:
    """The FeatureCache to train from (None when disabled) and what the card says about it."""
    from planner.compress.featcache import DEFAULT_CACHE_BYTES, open_or_build

    if where is False or (isinstance(where, str) and where.lower() == "none"):
        return None, None
    start = time.perf_counter()
    cache = open_or_build(backbone, images, None if where in (None, True) else where,
                          max_bytes=cache_bytes or DEFAULT_CACHE_BYTES, seed=seed, device=device, progress=progress)
    return cache, {"key": cache.key, "rows": cache.n, "of": int(len(images)), "gib": round(cache.nbytes() / 2**30, 3),
                   "open_or_build_seconds": round(time.perf_counter() - start, 1)}


def _teacher_labels(backbone: Backbone, x: torch.Tensor) -> torch.Tensor:
    """The unsplit model's top-1 predictions: the targets of agreement (and of CE, which is off without labels)."""
    from planner.compress.featcache import adapt_batch, per_sample_activation_values

    chunk = adapt_batch(500, 8 * per_sample_activation_values(backbone), 1 << 30, floor=1)
    with torch.inference_mode():
        return torch.cat([backbone.features(part.to(backbone.device))[0].argmax(1).cpu() for part in x.split(chunk)])


def _card(loaded, data: TrainData, kind, ae, config, cfg, out: Path, sha, backbone, result, command,
          device="cpu") -> dict:
    """The weights card: what was trained for which model, weights and data, by which recipe, how well."""
    from planner.compress.aefile import load_autoencoder_file

    vy = data.val_y if data.val_y is not None else _teacher_labels(backbone, data.val_x)
    metric = "accuracy" if data.val_y is not None else "agreement"
    scores = evaluate(load_autoencoder_file(out).to(device), backbone, data.val_x, vy.cpu(), device=device)
    flag = " --independent" if kind == "independent" else ""
    return {
        "model": loaded.name, "kind": kind, "id": f"{loaded.name}/{kind}@{sha[:8]}", "file": out.name,
        "sha256": sha, "model_spec": loaded.describe(), "weights_sha256": loaded.weights_sha256,
        "data": data.fingerprint, "served_cuts": list(ae.cuts), "bits": list(ae.bits), "metric": metric,
        "config": config.to_dict(), "params": ae.param_counts(),
        "val_images": int(len(vy)), f"val_backbone_{metric}": round(scores["backbone"], 2),
        f"val_{metric}": {f"{c}@{b}w{w}": round(a, 2) for (c, w, b), a in scores["rows"].items()},
        "train": {"command": command or f"planner train-ae --model {loaded.name}{flag}",
                  **asdict(cfg), "train_seconds": round(result.seconds, 1), "threads": torch.get_num_threads(),
                  "train_images": int(len(data.x)), "machine": platform.processor() or platform.machine(),
                  "cpu_count": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__,
                  "history": result.history},
    }
