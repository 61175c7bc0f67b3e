"""`planner train-backbone NAME`: the reproducible recipe that made the committed zoo weights.

SGD with Nesterov momentum, one-cycle learning rate, light augmentation (random 2-pixel shifts and
horizontal flips), label smoothing; seeded; the best epoch on the validation split is kept and scored
on the test set. The weights card (JSON) records the recipe, the accuracies and the wall time.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from planner import zoo
from planner.data import load_fashion_mnist
from planner.evaluate import accuracy


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random shifts of up to `pad` pixels and horizontal flips, per sample."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), value=float(x.min()))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, 1, h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, 1, h, w)
    out = out.gather(3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def train_backbone(name: str, epochs: int | None = None, seed: int = 0, batch_size: int = 128, lr: float = 0.1,
                   threads: int | None = None, out_dir: str | Path | None = None, limit: int | None = None,
                   progress: bool = True, device="cpu") -> dict:
    """Train a zoo model from scratch; write NAME.pt and NAME.json to `out_dir` (default: the zoo's weights dir).
    `device` ('auto', 'cpu', 'cuda[:N]'): where it trains (the augmentation and the saved weights stay on the CPU)."""
    from tqdm.auto import tqdm

    from planner.devices import resolve_device

    device = resolve_device(device)
    entry_epochs = zoo.recipe(name).get("epochs", 10)
    epochs = epochs or entry_epochs
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train = load_fashion_mnist("train")
    x_all, y_all = train.tensors(limit)
    val = load_fashion_mnist("val").tensors(limit)
    model = zoo.build(name).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps_per_epoch = (len(y_all) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.25)
    best_val, best_state, history = -1.0, None, []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(y_all), generator=gen)
        bar = tqdm(range(steps_per_epoch), desc=f"{name} epoch {epoch + 1}/{epochs}", disable=not progress)
        for step in bar:
            idx = perm[step * batch_size:(step + 1) * batch_size]
            x, y = _augment(x_all[idx], gen).to(device), y_all[idx].to(device)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        model.eval()
        val_acc = accuracy(model, val, device=device)
        history.append({"epoch": epoch + 1, "val_accuracy": round(val_acc, 2),
                         "elapsed_s": round(time.perf_counter() - start, 1)})
        if progress:
            print(f"{name} epoch {epoch + 1}: val accuracy {val_acc:.2f}%")
        if val_acc > best_val:
            best_val, best_state = val_acc, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    train_seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    model.eval()
    test_acc = accuracy(model, "test", limit=limit, device=device)
    out_dir = Path(out_dir) if out_dir else zoo.WEIGHTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(best_state, out_dir / f"{name}.pt")
    card = {
        "name": name,
        "test_accuracy": round(test_acc, 2),
        "val_accuracy": round(best_val, 2),
        "params": int(sum(p.numel() for p in model.parameters())),
        "train": {
            "command": f"planner train-backbone {name} --epochs {epochs} --seed {seed}",
            "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr,
            "threads": torch.get_num_threads(), "device": str(device), "train_seconds": round(train_seconds, 1),
            "train_images": int(len(y_all)), "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "numpy": np.__version__, "history": history,
        },
    }
    (out_dir / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
