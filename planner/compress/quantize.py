"""Uniform b-bit quantization of a bounded latent in [0, 1], b chosen per call (1..8).

Two paths share one rounding rule, `code = round(z * (2**b - 1))`:
- training: `fake_quantize` returns the dequantized value with a straight-through gradient;
- deployment: `to_codes` returns the integer codes (uint8) that cross the link, `from_codes` maps them back.
Because the latent is bounded (a sigmoid), the quantizer needs no scale or offset side information.
"""

from __future__ import annotations

import torch

from planner.errors import CompressError
from planner.types import check_bits


def parse_bits(text: str) -> tuple[int, ...]:
    """'2,3,4,6,8' -> (2, 3, 4, 6, 8), sorted and de-duplicated, each checked to be in 1..8."""
    try:
        values = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise CompressError(f"bad bit list {text!r}: expected integers joined by commas, e.g. 2,4,8") from None
    if not values:
        raise CompressError("empty bit list: give at least one bitwidth, e.g. 2,4,8")
    return tuple(sorted({check_bits(v) for v in values}))


def levels(bits: int) -> int:
    """Largest code of a b-bit quantizer: 2**b - 1."""
    return (1 << bits) - 1


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def fake_quantize(z: torch.Tensor, bits: int) -> torch.Tensor:
    """z in [0, 1] -> its b-bit dequantized value; the gradient passes straight through the rounding."""
    n = levels(bits)
    return _RoundSTE.apply(z.clamp(0.0, 1.0) * n) / n


def to_codes(z: torch.Tensor, bits: int) -> torch.Tensor:
    """z in [0, 1] -> uint8 codes in [0, 2**b - 1] (the same rounding as `fake_quantize`)."""
    return torch.round(z.clamp(0.0, 1.0) * levels(bits)).to(torch.uint8)


def from_codes(codes: torch.Tensor, bits: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 codes -> dequantized values in [0, 1]; codes above 2**b - 1 are an error, never wrapped."""
    if codes.dtype != torch.uint8:
        raise CompressError(f"codes must be a uint8 tensor, got {codes.dtype}")
    n = levels(bits)
    if codes.numel() and int(codes.max()) > n:
        raise CompressError(f"code {int(codes.max())} does not fit in {bits} bits (max {n})")
    return codes.to(dtype) / n
