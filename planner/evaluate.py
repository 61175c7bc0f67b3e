"""Accuracy of a model (or any callable batch -> logits) on a data split, batched, without gradients."""

from __future__ import annotations

import torch

from planner.config import batch_for
from planner.data import as_loader, loader


def accuracy(model, data="test", batch_size: int = 500, limit: int | None = None, progress: bool = False,
             device=None) -> float:
    """Top-1 accuracy in percent. `data` is a split name, Dataset, DataLoader or (x, y) tensors; `device`: where
    the model's parameters are (the batches go there; None: the CPU)."""
    batches = loader(data, batch_size=batch_size, limit=limit) if isinstance(data, str) else as_loader(data, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="evaluate", leave=False)
    correct = total = 0
    with torch.inference_mode():
        for x, y in batches:
            correct += (_on(model, x, device).argmax(1) == y).sum().item()
            total += len(y)
    return 100.0 * correct / max(total, 1)


def _on(fn, x: torch.Tensor, device) -> torch.Tensor:
    """fn(x) with x moved to `device` (None: as is), the result back on the CPU."""
    return fn(x).cpu() if device is None else fn(x.to(device)).cpu()


def targets(model, data, preprocess, batch_size: int | None = None, device=None) -> torch.Tensor:
    """What a split is scored against: the labels, or (no labels) the unsplit model's top-1 predictions."""
    if data.labels is not None:
        return data.labels
    batch_size = batch_size or batch_for(data.raw.shape[1:])
    with torch.inference_mode():
        return torch.cat([_on(model, x, device).argmax(1) for x in data.inputs(preprocess, batch_size)])


def score(fn, model, data, preprocess, batch_size: int | None = None, device=None) -> dict:
    """{"accuracy": %, "n": N} of `fn` (batch -> logits) on a DataSet, or {"agreement": %, "n": N}: top-1
    agreement with the unsplit `model` when the data has no labels; `device`: where both run (None: as is)."""
    batch_size = batch_size or batch_for(data.raw.shape[1:])
    want = targets(model, data, preprocess, batch_size, device)
    correct = 0
    with torch.inference_mode():
        for i, x in enumerate(data.inputs(preprocess, batch_size)):
            correct += int((_on(fn, x, device).argmax(1) == want[i * batch_size: i * batch_size + len(x)]).sum())
    return {data.metric: 100.0 * correct / max(len(want), 1), "n": int(len(want))}


def reference(model, data, preprocess, batch_size: int | None = None,
              threshold: float | None = None) -> dict[str, torch.Tensor]:
    """What splits are scored against on a DataSet: {"target": labels or the unsplit top-1, "scored": the samples
    a figure counts}. With labels every sample is scored (accuracy). Without labels, "scored" are the samples the
    unsplit model is confident about (top-1 probability >= `threshold`, default `config.CONFIDENT_P`): the
    plans' agreement; "all" is every sample (plain agreement)."""
    from planner.config import CONFIDENT_P

    if data.labels is not None:
        ones = torch.ones(len(data.labels), dtype=torch.bool)
        return {"target": data.labels, "scored": ones, "all": ones}
    batch_size = batch_size or batch_for(data.raw.shape[1:])
    with torch.inference_mode():
        probs = torch.cat([model(x).softmax(1) for x in data.inputs(preprocess, batch_size)])
    conf, top1 = probs.max(1)
    scored = conf >= (CONFIDENT_P if threshold is None else threshold)
    return {"target": top1, "scored": scored, "all": torch.ones(len(top1), dtype=torch.bool)}
