"""Shape adapters: vectors (D) and token sequences (T x D) viewed as maps (D x 1 x 1, D x T x 1) and back, so one
convolutional autoencoder serves every feature kind."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def as_map_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """The (C, H, W) view of a feature shape: (D,) -> (D, 1, 1), (T, D) -> (D, T, 1)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return (shape[0], 1, 1)
    if len(shape) == 2:
        return (shape[1], shape[0], 1)
    return shape  # type: ignore[return-value]


def to_map(x: torch.Tensor, feature_shape: Sequence[int] | None) -> torch.Tensor:
    """A batch of features as maps (N, C, H, W) for the network (see `as_map_shape`)."""
    n = len(feature_shape) if feature_shape else 3
    if n == 1:
        return x[:, :, None, None]
    if n == 2:
        return x.transpose(1, 2)[..., None]
    return x


def from_map(y: torch.Tensor, feature_shape: Sequence[int] | None) -> torch.Tensor:
    """The inverse of `to_map`."""
    n = len(feature_shape) if feature_shape else 3
    if n == 1:
        return y[:, :, 0, 0]
    if n == 2:
        return y[..., 0].transpose(1, 2)
    return y
