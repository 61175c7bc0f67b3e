"""Train the shared autoencoder (or the independent baseline) against a frozen backbone, then recalibrate BN.

The frozen backbone's teacher logits and features at every served cut come from a FeatureCache (computed once,
`featcache.py`; or a live backbone pass per step without one). Every step picks one cut (cycling through a
seeded shuffle of the cuts, so all cuts see the same number of examples), a batch of cached rows (a smaller
batch where the cut's tail is large) and a few (width, bits) settings (default: the largest and one other; with
3 or more, the sandwich rule: the smallest, the largest and random others), and for each setting decodes the
fake-quantized latent and runs the backbone's tail on it. The loss is the mean over those settings of

    kd_weight * T^2 * KL(teacher(T) || student(T)) + mse_weight * MSE(feature / scale) + ce_weight * CE(labels)

The same loop trains the independent baseline: a step on a cut updates that cut's own autoencoder.
After training the BatchNorm running statistics are recomputed per cut and bitwidth (exact averages over
`recal_batches` batches of training images, the model in inference mode elsewhere).
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from planner.compress.autoencoder import (
    FEATURE_KINDS,
    AEConfig,
    Autoencoder,
    build_autoencoder,
    save_autoencoder,
    select_cuts,
    weights_path,
)
from planner.compress.quantize import fake_quantize
from planner.config import DEFAULT_BITS, DEFAULT_LATENT, DEFAULT_WIDTHS, batch_for
from planner.errors import CompressError
from planner.partition import Partitioner


@dataclass
class TrainConfig:
    """The training recipe (stored in the weights card)."""

    # issue 24's recipe: many cheap steps from the feature cache (the committed weights of issue 15 were trained
    # with 3000 steps x 128 images x 3 settings; at equal compute this one loses less: docs/results.md, issue 24)
    steps: int = 12000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-5
    warmup: float = 0.03
    bits_per_step: int = 2  # (width, bits) settings per step: 2 = the largest + one other; n >= 3 = the smallest +
    # the largest + (n - 2) random others
    kd_weight: float = 1.0
    mse_weight: float = 1.0
    ce_weight: float = 0.5
    temperature: float = 2.0
    recal_batches: int = 20
    recal_batch_size: int = 250  # at most; fewer for large inputs (`planner.config.batch_for`)
    seed: int = 0
    checkpoint_every: int = 250
    memory_mb: int = 2048  # activations of one training step: the batch shrinks at cuts whose tail needs more

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.bits_per_step < 1 or self.memory_mb < 16:
            raise CompressError(f"training recipe: steps, batch_size and bits_per_step must be >= 1 and memory_mb "
                                f">= 16 (got {self.steps}, {self.batch_size}, {self.bits_per_step}, {self.memory_mb})")
        if self.lr <= 0 or self.temperature <= 0:
            raise CompressError(f"training recipe: lr and temperature must be > 0 (got {self.lr}, {self.temperature})")


@dataclass
class TrainResult:
    ae: Autoencoder
    history: list = field(default_factory=list)
    seconds: float = 0.0
    steps_done: int = 0


# -- the frozen backbone, tapped at every served cut ---------------------------------------------------
class Backbone:
    """A frozen model traced once: `features(x)` -> (logits, {cut: feature}) in one pass; `tail(cut)`."""

    def __init__(self, model: nn.Module, example: torch.Tensor, cut_ids: Sequence[str] | None = None,
                 partitioner: Partitioner | None = None, kinds: Sequence[str] = ("map",)):
        """`kinds`: the feature kinds served by default; with "vector" in it, vectors are served only by a model
        that has no map or token-sequence cut of the other kinds."""
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.part = partitioner or Partitioner(model, example)
        first = [k for k in kinds if k != "vector"] if cut_ids is None else kinds
        try:
            self.cuts = select_cuts(self.part.cuts, cut_ids, first or kinds)
        except CompressError:
            if cut_ids is not None or "vector" not in kinds:
                raise
            self.cuts = select_cuts(self.part.cuts, None, ("vector",))  # a model without maps or token sequences
        self.cut_ids = [c.id for c in self.cuts]
        self._tails: dict[str, nn.Module] = {}
        self.device = torch.device("cpu")
        self._tap = self._build_tap()

    def to(self, device: torch.device | str) -> Backbone:
        """Move the frozen model (and the tails made so far and later) to `device`."""
        self.device = torch.device(device)
        self.model.to(self.device)
        if self.part.gm is not None:
            self.part.gm.to(self.device)
        for t in self._tails.values():
            t.to(self.device)
        return self

    def _build_tap(self) -> Callable:
        gm = self.part.gm
        if gm is None:  # an nn.Sequential torch.fx could not trace: run children, keep the cut outputs
            wanted = set(self.cut_ids)

            def run_children(x):
                feats = {}
                for name, child in self.model.named_children():
                    x = child(x)
                    if name in wanted:
                        feats[name] = x
                return x, feats

            return run_children
        graph, env = fx.Graph(), {}
        by_name = {n.name: n for n in gm.graph.nodes}
        for n in gm.graph.nodes:
            if n.op == "output":
                result = fx.map_arg(n.args[0], lambda a: env[a])
                graph.output((result, [env[by_name[c]] for c in self.cut_ids]))
            else:
                env[n] = graph.node_copy(n, lambda a: env[a])
        tapped = fx.GraphModule(gm, graph)
        ids = list(self.cut_ids)

        def run(x):
            logits, feats = tapped(x)
            return logits, dict(zip(ids, feats, strict=True))

        return run

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self._tap(x)

    def tail(self, cut_id: str) -> nn.Module:
        if cut_id not in self._tails:
            self._tails[cut_id] = self.part.split(cut_id)[1].eval().to(self.device)
        return self._tails[cut_id]


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's distillation loss: T^2 * KL(softmax(teacher / T) || softmax(student / T))."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean",
                    log_target=True) * t * t


def settings_sandwich(widths: Sequence[int], bits: Sequence[int], n: int, rng: random.Random) -> list[tuple[int, int]]:
    """(width, bits) pairs for one step: the smallest and the largest setting plus n - 2 random others (the
    sandwich rule over both knobs, so the extremes are trained every step); n = 2: the largest and one random
    other (the cheap step: the largest setting every step, the others in turn)."""
    pairs = [(w, b) for w in sorted(widths) for b in sorted(bits)]
    if n >= len(pairs):
        return pairs
    if n <= 1:
        return [rng.choice(pairs)]
    if n == 2:  # the largest (the setting the accuracy target is on) + any other one
        return sorted({rng.choice(pairs[:-1]), pairs[-1]})
    return sorted({pairs[0], pairs[-1], *rng.sample(pairs[1:-1], min(n - 2, len(pairs) - 2))})


def step_loss(ae: Autoencoder, backbone: Backbone, x: torch.Tensor, y: torch.Tensor, cut: str,
              settings: Sequence[tuple[int, int]], cfg: TrainConfig) -> torch.Tensor:
    """The training loss on one batch of images at one cut, averaged over the (width, bits) `settings` (runs the
    backbone for the teacher and the feature; training itself reads them from a FeatureCache)."""
    teacher, feats = backbone.features(x)
    z = ae.latent(feats[cut], cut)
    terms = [setting_loss(ae, backbone.tail(cut), teacher, feats[cut], y, z, cut, s, cfg) for s in settings]
    return sum(terms, torch.zeros(())) / len(settings)


def setting_loss(ae: Autoencoder, tail: nn.Module, teacher: torch.Tensor, feature: torch.Tensor,
                 y: torch.Tensor, z: torch.Tensor, cut: str, setting: tuple[int, int], cfg: TrainConfig) -> torch.Tensor:
    """The loss of one (width, bits) setting given the widest latent `z` of `feature`: the decoder and the tail
    run once (the encoder's pass is shared by every setting of the step)."""
    w, b = setting
    scale = ae.input_scale(cut)
    rec = ae.reconstruct(fake_quantize(z[:, :w], b), cut, b)
    term = cfg.mse_weight * F.mse_loss(rec / scale, feature / scale)
    if cfg.kd_weight or cfg.ce_weight:
        logits = tail(rec)
        if cfg.kd_weight:
            term = term + cfg.kd_weight * distill_loss(logits, teacher, cfg.temperature)
        if cfg.ce_weight:
            term = term + cfg.ce_weight * F.cross_entropy(logits, y)
    return term


def step_backward(ae: Autoencoder, tail: nn.Module, teacher: torch.Tensor, feature: torch.Tensor, y: torch.Tensor,
                  cut: str, settings: Sequence[tuple[int, int]], cfg: TrainConfig) -> float:
    """Accumulate the gradients of the step's loss (the mean over `settings`) and return its value. Each setting
    is back-propagated on its own (the encoder once, at the end), so only one setting's graph is alive at a time."""
    z = ae.latent(feature, cut)
    zd = z.detach().requires_grad_(True)
    total = 0.0
    for setting in settings:
        term = setting_loss(ae, tail, teacher, feature, y, zd, cut, setting, cfg) / len(settings)
        term.backward()
        total += float(term.detach())
    z.backward(zd.grad)
    return total


def _lr_lambda(steps: int, warmup: float) -> Callable[[int], float]:
    w = max(1, int(steps * warmup))

    def f(step: int) -> float:
        if step < w:
            return (step + 1) / w
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - w) / max(1, steps - w))))

    return f


def _cut_order(n_cuts: int, steps: int, seed: int) -> list[int]:
    """Cut index per step: consecutive seeded shuffles of all cuts (balanced)."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < steps:
        block = list(range(n_cuts))
        rng.shuffle(block)
        order += block
    return order[:steps]


class _Batches:
    """Where a step's (teacher logits, feature, labels) come from: the FeatureCache's rows when there is one (no
    backbone pass), else a live backbone pass over the images. Batch sizes follow `batch_size(cut)`."""

    def __init__(self, backbone: Backbone, images: torch.Tensor, labels: torch.Tensor, cache=None,
                 device: torch.device | str = "cpu", cfg: TrainConfig | None = None, ae: Autoencoder | None = None):
        self.backbone, self.images, self.cache, self.device = backbone, images, cache, torch.device(device)
        self.labels = labels if cache is None else labels[torch.from_numpy(cache.rows)]
        self.n = len(self.labels)
        self._sizes: dict[str, int] = {}
        self.cfg, self.ae = cfg or TrainConfig(), ae

    def batch_size(self, cut: str) -> int:
        """The recipe's batch, lowered where the tail's activations (4 bytes x 3: forward, saved, gradient) and
        the decoder's would pass `cfg.memory_mb`."""
        if cut not in self._sizes:
            from planner.compress.featcache import adapt_batch, per_sample_activation_values

            vals = per_sample_activation_values(self.backbone, cut)
            if self.ae is not None:
                spec = self.ae.spec(cut)
                vals += 4 * self.ae.config.decoder_width * math.prod(spec.mid_size) + 2 * math.prod(spec.shape)
            self._sizes[cut] = adapt_batch(self.cfg.batch_size, 12 * vals, self.cfg.memory_mb << 20)
        return self._sizes[cut]

    def draw(self, size: int, gen: torch.Generator) -> torch.Tensor | slice:
        """A batch of `size` rows: random indices (live), or a random window of the cache's shuffled rows."""
        return _draw(self.n, size, gen, self.cache is not None)

    def get(self, cut: str, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.labels[idx].to(self.device)
        if self.cache is not None:
            return self.cache.teacher(idx, self.device), self.cache.feature(cut, idx, self.device), y
        teacher, feats = self.backbone.features(self.images[idx].to(self.device))
        return teacher, feats[cut], y


def train(ae: Autoencoder, backbone: Backbone, images: torch.Tensor, labels: torch.Tensor,
          cfg: TrainConfig, checkpoint: str | Path | None = None, resume: bool = False,
          progress: bool = True, stop_after: int | None = None, cache=None,
          device: torch.device | str = "cpu") -> TrainResult:
    """Train `ae` in place on the frozen `backbone` for `cfg.steps` steps; resumable from `checkpoint`.
    `stop_after` ends this session after that many steps (a checkpoint is written), to resume later. With a
    `cache` (a FeatureCache of these images), steps read features and teacher logits from it."""
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in ae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.steps, cfg.warmup))
    order = _cut_order(len(ae.cuts), cfg.steps, cfg.seed)
    start_step, history, elapsed = _resume(checkpoint, resume, cfg, ae, opt, sched, gen)
    batches = _Batches(backbone, images, labels, cache, device, cfg, ae)
    cuts = ae.cuts
    ae.train()
    t0 = time.perf_counter() - elapsed
    bar = tqdm(range(start_step, cfg.steps), desc=f"train-ae {ae.kind}", initial=start_step, total=cfg.steps,
               disable=not progress)
    running = None
    end = cfg.steps if stop_after is None else min(cfg.steps, start_step + stop_after)
    for step in bar:
        if step >= end:
            break
        cut = cuts[order[step]]
        teacher, feature, y = batches.get(cut, batches.draw(batches.batch_size(cut), gen))
        chosen = settings_sandwich(ae.widths(cut), ae.bits, cfg.bits_per_step,
                                   random.Random(cfg.seed * 1_000_003 + step))
        opt.zero_grad(set_to_none=True)
        value = step_backward(ae, backbone.tail(cut), teacher, feature, y, cut, chosen, cfg)
        opt.step()
        sched.step()
        running = value if running is None else 0.98 * running + 0.02 * value
        if step % 10 == 0:
            bar.set_postfix(loss=f"{running:.4f}", cut=cut)
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            history.append({"step": step + 1, "loss": round(running, 5),
                            "elapsed_s": round(time.perf_counter() - t0, 1)})
        if checkpoint and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 in (cfg.steps, end)):
            _save_checkpoint(Path(checkpoint), ae, opt, sched, gen, step + 1, cfg, history, time.perf_counter() - t0)
    bar.close()
    ae.eval()
    return TrainResult(ae, history, time.perf_counter() - t0, end)


def _resume(checkpoint, resume: bool, cfg: TrainConfig, ae, opt, sched, gen) -> tuple[int, list, float]:
    """(start step, history, elapsed seconds) from the checkpoint when resuming, else a fresh start."""
    ckpt = Path(checkpoint) if checkpoint else None
    if not (ckpt and resume and ckpt.exists()):
        return 0, [], 0.0
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    if state["steps"] != cfg.steps:
        raise CompressError(f"checkpoint {ckpt} was made for {state['steps']} steps, not {cfg.steps}; "
                            "resume with the same --steps or start afresh")
    ae.load_state_dict(state["ae"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    gen.set_state(state["gen"])
    return state["step"], state["history"], state["elapsed"]


def _save_checkpoint(ckpt: Path, ae, opt, sched, gen, step: int, cfg: TrainConfig, history, elapsed) -> None:
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"ae": ae.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "gen": gen.get_state(), "step": step, "steps": cfg.steps, "history": history,
                "elapsed": elapsed}, ckpt)


@torch.no_grad()
def recalibrate_bn(ae: Autoencoder, backbone: Backbone, images: torch.Tensor, batches: int = 20,
                   batch_size: int = 250, seed: int = 0, cache=None, device: torch.device | str = "cpu") -> None:
    """Recompute every BatchNorm's running statistics per cut (encoder) and per cut and bitwidth (decoder) as
    exact averages over `batches` batches of `images` (of the cache's rows when a FeatureCache is given)."""
    from planner.compress.quantize import fake_quantize

    gen = torch.Generator().manual_seed(seed + 1)
    n = len(images) if cache is None else cache.n
    ae.reset_bn_stats()
    ae.set_bn_cumulative(True)
    ae.train()
    try:
        for _ in range(batches):
            idx = _draw(n, batch_size, gen, cache is not None)
            live = None if cache is not None else backbone.features(images[idx].to(device))[1]
            for cut in ae.cuts:
                z = ae.latent(cache.feature(cut, idx, device) if live is None else live[cut], cut)
                for w in ae.widths(cut):
                    for b in ae.bits:
                        ae.reconstruct(fake_quantize(z[:, :w], b), cut, b)
    finally:
        ae.set_bn_cumulative(False)
        ae.eval()


def _draw(n: int, size: int, gen: torch.Generator, window: bool) -> torch.Tensor | slice:
    """`size` random rows of `n`: indices, or a random window of a FeatureCache's shuffled rows."""
    if not window:
        return torch.randint(0, n, (size,), generator=gen)
    start = int(torch.randint(0, n - min(size, n) + 1, (1,), generator=gen))
    return slice(start, start + min(size, n))


@torch.no_grad()
def calibrate_scales(ae: Autoencoder, backbone: Backbone, images: torch.Tensor, count: int = 1024,
                     seed: int = 0, cache=None, device: torch.device | str = "cpu") -> None:
    """Measure each cut's input scale (99.9th percentile) and sign on `count` training images (cached rows when
    a FeatureCache is given)."""
    gen = torch.Generator().manual_seed(seed + 2)
    n = len(images) if cache is None else cache.n
    count = batch_for(images.shape[1:], count, 1 << 26)  # 1024 small images; about 450 crops of 3x224x224
    idx = _draw(n, min(count, n), gen, cache is not None)
    if cache is not None:
        ae.calibrate({c: cache.feature(c, idx) for c in ae.cuts})
        return
    feats: dict[str, list] = {c: [] for c in ae.cuts}
    for chunk in images[idx].split(batch_for(images.shape[1:], 256)):
        for c, f in backbone.features(chunk.to(device))[1].items():
            if c in feats:
                feats[c].append(f.cpu())
    ae.calibrate({c: torch.cat(v) for c, v in feats.items()})


@torch.no_grad()
def evaluate(ae: Autoencoder | None, backbone: Backbone, images: torch.Tensor, labels: torch.Tensor,
             cuts: Sequence[str] | None = None, bits: Sequence[int] | None = None,
             batch_size: int = 500, widths: Sequence[int] | None = None, device: torch.device | str = "cpu",
             memory_mb: int = 1024) -> dict:
    """Accuracy (percent) of the backbone and, per (cut, width, bits), of head -> encode -> decode -> tail using
    the integer deployment path (`widths` None: every width each cut serves). Returns {"backbone": acc, "rows":
    {(cut, width, bits): acc}}. The batch shrinks below `batch_size` where the model's activations would pass
    `memory_mb`."""
    from planner.compress.featcache import adapt_batch, per_sample_activation_values

    batch_size = adapt_batch(batch_size, 8 * per_sample_activation_values(backbone), memory_mb << 20)
    cuts = list(cuts or (ae.cuts if ae is not None else []))
    bits = list(bits or (ae.bits if ae is not None else []))
    keys = [(c, w, b) for c in cuts for w in ae.widths(c) if widths is None or w in widths for b in bits] \
        if ae is not None else []
    correct = dict.fromkeys(keys, 0)
    base = 0
    batch_size = batch_size or batch_for(images.shape[1:])
    with torch.inference_mode():
        for xb, yb in zip(images.split(batch_size), labels.split(batch_size), strict=True):
            xb, yb = xb.to(device), yb.to(device)
            logits, feats = backbone.features(xb)
            base += int((logits.argmax(1) == yb).sum())
            for c, w, b in keys:
                rec = ae.decode(ae.encode(feats[c], c, b, w), c, b)
                correct[(c, w, b)] += int((backbone.tail(c)(rec).argmax(1) == yb).sum())
    n = max(1, len(labels))
    return {"backbone": 100.0 * base / n, "rows": {k: 100.0 * v / n for k, v in correct.items()}}


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
    by default it writes the committed weights path. See `train_autoencoder` for the options."""
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


def default_cuts(loaded, partitioner: Partitioner | None = None) -> list:
    """The cuts `train-ae` serves for a LoadedModel when no --cuts are given: block outputs (maps after an
    activation or pooling; token sequences after an activation, a residual sum or a LayerNorm), vectors only in a
    model that has neither; the zoo keeps maps only (its committed weights' rule)."""
    part = partitioner or Partitioner(loaded.model, loaded.example(), loaded.leaf_modules)
    return Backbone(loaded.model, loaded.example(), None, part,
                    kinds=("map",) if loaded.zoo else FEATURE_KINDS).cuts


def train_autoencoder(loaded, data: TrainData, kind: str = "shared", *, variant: str = "slim",
                      latent: float = DEFAULT_LATENT, width: int = 32, decoder_width: int = 48,
                      bits: Sequence[int] = DEFAULT_BITS, widths: Sequence[int] = DEFAULT_WIDTHS,
                      cut_ids: Sequence[str] | None = None, cfg: TrainConfig | None = None,
                      threads: int | None = None, out: str | Path | None = None, checkpoint: str | Path | None = None,
                      resume: bool = False, progress: bool = True, command: str = "",
                      stop_after: int | None = None, device: str | torch.device = "cpu",
                      feature_cache: str | Path | bool | None = None,
                      cache_bytes: int | None = None) -> dict:
    """Train the autoencoder of any model (a LoadedModel), recalibrate BN, score it on `data.val_*`, and write
    `<out>` plus a JSON card beside it (zoo default: runs/ae/<model>-<kind>.pt, never the shipped weights: copy
    deliberately). `feature_cache`: a folder for the FeatureCache (None: the default, False or "none": run the
    backbone every step). Returns the card (only {"stopped_at": step, "checkpoint": path} when `stop_after`
    ended the session early)."""
    from planner.devices import resolve_device

    cfg = cfg or TrainConfig()
    if data.y is None:
        cfg = replace(cfg, ce_weight=0.0)  # no labels: distillation (and reconstruction) only
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    if out is None:
        if not loaded.zoo:
            raise CompressError("give --out FILE for the autoencoder of your own model")
        out = default_out(loaded.name, kind)
    out = Path(out)
    wall = time.perf_counter()
    part = Partitioner(loaded.model, loaded.example(), loaded.leaf_modules)
    backbone = Backbone(loaded.model, loaded.example(), cut_ids, part,
                        kinds=("map",) if loaded.zoo else FEATURE_KINDS).to(dev)
    config = AEConfig.for_cuts(backbone.cuts, latent=latent, widths=tuple(widths), bits=tuple(bits), variant=variant,
                               width=width, decoder_width=decoder_width,
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


@torch.no_grad()
def entropy_features(backbone: Backbone, images: torch.Tensor, cache=None, seed: int = 0,
                     count: int = 2000) -> dict[str, torch.Tensor]:
    """Features of `count` training images at every served cut (CPU), to fit the entropy models on (fewer where
    they would take more than 512 MiB: each image of a large map still gives thousands of symbols per channel)."""
    per_image = 4 * sum(math.prod(c.shape) for c in backbone.cuts)
    count = max(16, min(count, (512 << 20) // max(1, per_image)))
    if cache is not None:
        window = _draw(cache.n, min(count, cache.n), torch.Generator().manual_seed(seed + 3), True)
        return {c: cache.feature(c, window) for c in backbone.cut_ids}
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed + 3))[:count]
    feats: dict[str, list] = {c: [] for c in backbone.cut_ids}
    for part in idx.split(250):
        for c, f in backbone.features(images[part].to(backbone.device))[1].items():
            feats[c].append(f.cpu())
    return {c: torch.cat(v) for c, v in feats.items()}


def default_out(model_name: str, kind: str = "shared") -> Path:
    """Where `train-ae` writes a zoo model's autoencoder by default: beside the runs, not over the shipped file."""
    return Path("runs") / "ae" / weights_path(model_name, kind).name


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
    from planner.compress.autoencoder import load_autoencoder_file

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
