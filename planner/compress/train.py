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
Here the training loop (`train`) and its recipe (`TrainConfig`); the backbone and calibration live in
`backbone.py`, the end-to-end job (data, cache, weights file, card) in `trainjob.py`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from planner.compress.autoencoder import Autoencoder
from planner.compress.backbone import Backbone, draw_rows
from planner.errors import CompressError


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

    def __post_init__(self) -> None:
        """Counts and sizes are at least 1, rates positive, weights >= 0: refused before any work."""
        from planner.rules import COUNT, SHARE, Number

        for name in ("steps", "batch_size", "bits_per_step", "recal_batches", "recal_batch_size", "checkpoint_every"):
            COUNT.check(name, getattr(self, name))
        for name in ("lr", "temperature"):
            Number(0, open_low=True).check(name, getattr(self, name))
        for name in ("weight_decay", "kd_weight", "mse_weight", "ce_weight"):
            Number(0).check(name, getattr(self, name))
        SHARE.check("warmup", self.warmup)
        Number(16, integer=True, unit="MB").check("memory_mb", self.memory_mb)


@dataclass
class TrainResult:
    ae: Autoencoder
    history: list = field(default_factory=list)
    seconds: float = 0.0
    steps_done: int = 0


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
    rec = ae.reconstruct(ae.quantized(z, cut, b, w), cut, b)
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
        return draw_rows(self.n, size, gen, self.cache is not None)

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
