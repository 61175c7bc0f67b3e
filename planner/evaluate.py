"""Accuracy of a model (or any callable batch -> logits) on a data split, batched, without gradients."""

from __future__ import annotations

import torch

from planner.data import as_loader, loader


def accuracy(model, data="test", batch_size: int = 500, limit: int | None = None, progress: bool = False) -> float:
    """Top-1 accuracy in percent. `data` is a split name, Dataset, DataLoader or (x, y) tensors."""
    batches = loader(data, batch_size=batch_size, limit=limit) if isinstance(data, str) else as_loader(data, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="evaluate", leave=False)
    correct = total = 0
    with torch.inference_mode():
        for x, y in batches:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return 100.0 * correct / max(total, 1)
