"""The frozen backbone, tapped at every served cut (`Backbone`: logits and features in one traced pass, the tail
of a cut), and what runs on it around training: BatchNorm recalibration, scale calibration, evaluation, the
features the entropy models are fitted on, the default cuts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import fx, nn

from planner.compress.autoencoder import Autoencoder
from planner.compress.cutselect import FEATURE_KINDS, select_cuts
from planner.config import batch_for
from planner.errors import CompressError
from planner.partition import Partitioner


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


def draw_rows(n: int, size: int, gen: torch.Generator, window: bool) -> torch.Tensor | slice:
    """`size` random rows of `n`: indices, or a random window of a FeatureCache's shuffled rows."""
    if not window:
        return torch.randint(0, n, (size,), generator=gen)
    start = int(torch.randint(0, n - min(size, n) + 1, (1,), generator=gen))
    return slice(start, start + min(size, n))


@torch.no_grad()
def recalibrate_bn(ae: Autoencoder, backbone: Backbone, images: torch.Tensor, batches: int = 20,
                   batch_size: int = 250, seed: int = 0, cache=None, device: torch.device | str = "cpu") -> None:
    """Recompute every BatchNorm's running statistics per cut (encoder) and per cut and bitwidth (decoder) as
    exact averages over `batches` batches of `images` (of the cache's rows when a FeatureCache is given)."""
    gen = torch.Generator().manual_seed(seed + 1)
    n = len(images) if cache is None else cache.n
    ae.reset_bn_stats()
    ae.set_bn_cumulative(True)
    ae.train()
    try:
        for _ in range(batches):
            idx = draw_rows(n, batch_size, gen, cache is not None)
            live = None if cache is not None else backbone.features(images[idx].to(device))[1]
            for cut in ae.cuts:
                z = ae.latent(cache.feature(cut, idx, device) if live is None else live[cut], cut)
                for w in ae.widths(cut):
                    for b in ae.bits:
                        ae.reconstruct(ae.quantized(z, cut, b, w), cut, b)
    finally:
        ae.set_bn_cumulative(False)
        ae.eval()


@torch.no_grad()
def calibrate_scales(ae: Autoencoder, backbone: Backbone, images: torch.Tensor, count: int = 1024,
                     seed: int = 0, cache=None, device: torch.device | str = "cpu") -> None:
    """Measure each cut's input scale (99.9th percentile) and sign on `count` training images (cached rows when
    a FeatureCache is given)."""
    gen = torch.Generator().manual_seed(seed + 2)
    n = len(images) if cache is None else cache.n
    count = batch_for(images.shape[1:], count, 1 << 26)  # 1024 small images; about 450 crops of 3x224x224
    idx = draw_rows(n, min(count, n), gen, cache is not None)
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


@torch.no_grad()
def entropy_features(backbone: Backbone, images: torch.Tensor, cache=None, seed: int = 0,
                     count: int = 2000) -> dict[str, torch.Tensor]:
    """Features of `count` training images at every served cut (CPU), to fit the entropy models on (fewer where
    they would take more than 512 MiB: each image of a large map still gives thousands of symbols per channel)."""
    per_image = 4 * sum(math.prod(c.shape) for c in backbone.cuts)
    count = max(16, min(count, (512 << 20) // max(1, per_image)))
    if cache is not None:
        window = draw_rows(cache.n, min(count, cache.n), torch.Generator().manual_seed(seed + 3), True)
        return {c: cache.feature(c, window) for c in backbone.cut_ids}
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed + 3))[:count]
    feats: dict[str, list] = {c: [] for c in backbone.cut_ids}
    for part in idx.split(250):
        for c, f in backbone.features(images[part].to(backbone.device))[1].items():
            feats[c].append(f.cpu())
    return {c: torch.cat(v) for c, v in feats.items()}


def default_cuts(loaded, partitioner: Partitioner | None = None) -> list:
    """The cuts `train-ae` serves for a LoadedModel when no --cuts are given: block outputs (maps after an
    activation or pooling; token sequences after an activation, a residual sum or a LayerNorm), vectors only in a
    model that has neither; the zoo keeps maps only (its committed weights' rule)."""
    part = partitioner or Partitioner(loaded.model, loaded.example(), loaded.leaf_modules)
    return Backbone(loaded.model, loaded.example(), None, part,
                    kinds=("map",) if loaded.zoo else FEATURE_KINDS).cuts
