"""Which cuts an autoencoder serves: the feature kind of a cut's output (map, tokens, vector), whether the cut is
meaningful (an activation, pool or block output), and `select_cuts`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from planner.errors import CompressError

FEATURE_KINDS = ("map", "tokens", "vector")

# Producers whose output is a block output after its activation (or a pooling of one): the cuts worth serving.
_ACTIVATIONS = {"ReLU", "relu", "ReLU6", "relu6", "LeakyReLU", "leaky_relu", "GELU", "gelu", "SiLU", "silu",
                "Hardswish", "hardswish", "ELU", "elu", "Mish", "mish", "Sigmoid", "sigmoid", "Tanh", "tanh"}
_POOLS = {"MaxPool2d", "max_pool2d", "AvgPool2d", "avg_pool2d", "AdaptiveAvgPool2d", "adaptive_avg_pool2d",
          "AdaptiveMaxPool2d", "adaptive_max_pool2d"}


_SEQUENCE_OUTPUTS = {"add", "LayerNorm", "layer_norm"}  # a transformer block's output is its residual sum


def feature_kind(shape: Sequence[int]) -> str | None:
    """'map' (C, H, W), 'tokens' (T, D), 'vector' (D), or None for shapes the autoencoder does not serve."""
    return {3: "map", 2: "tokens", 1: "vector"}.get(len(tuple(shape)))


def meaningful(cut, kinds: Sequence[str] = ("map",)) -> bool:
    """A cut the autoencoder serves by default: an inner (C, H, W) map with H, W >= 2 that a block returns (a
    residual sum, a linear projection's output: `Cut.block_output`) or that an activation or a pooling layer
    made outside any block; never a tensor inside a block (`Cut.inside_block`: a module with its own forward
    makes and uses it, e.g. the expanded maps of an inverted residual), nor the tensor between a conv and its
    BatchNorm or before a ReLU.
    With `kinds` also token sequences (T, D) after an activation, a residual sum or a LayerNorm, and vectors
    (D, at least 16 wide) after an activation."""
    shape = tuple(cut.shape)
    kind = feature_kind(shape)
    if cut.kind != "inner" or kind not in kinds or getattr(cut, "inside_block", False):
        return False
    if kind == "map":
        return min(shape[1:]) >= 2 and (cut.producer in _ACTIVATIONS | _POOLS or getattr(cut, "block_output", False))
    if kind == "tokens":
        return min(shape) >= 2 and cut.producer in _ACTIVATIONS | _SEQUENCE_OUTPUTS
    return shape[0] >= 16 and cut.producer in _ACTIVATIONS


def select_cuts(cuts: Sequence, ids: Iterable[str] | None = None, kinds: Sequence[str] = ("map",)) -> list:
    """The cuts to serve: the given ids (each an inner map, token sequence or vector), or every `meaningful`
    cut of the given feature kinds."""
    if ids is None:
        chosen = [c for c in cuts if meaningful(c, kinds)]
        if not chosen:
            raise CompressError(f"the model has no {'/'.join(kinds)} cut after an activation or pooling; pass cut "
                                "ids explicitly (--cuts)")
        return chosen
    by_id = {c.id: c for c in cuts}
    chosen = []
    for cid in ids:
        if cid not in by_id:
            raise CompressError(f"{cid!r} is not a cut of this model; cuts: {', '.join(by_id)}")
        c = by_id[cid]
        if c.kind != "inner" or feature_kind(c.shape) is None:
            raise CompressError(f"cut {cid!r} has shape {tuple(c.shape)}; the autoencoder serves inner maps "
                                "(C, H, W), token sequences (T, D) and vectors (D)")
        chosen.append(c)
    return chosen
