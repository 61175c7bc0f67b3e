"""Where torch work runs: `resolve_device("auto" | "cpu" | "cuda" | "cuda:N")` -> a torch.device, or one clear error.

Minimal resolver for training (`planner train-ae --device`); "auto" picks the first CUDA device when there is one.
"""

from __future__ import annotations

import torch

from planner.errors import PlannerError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


class DeviceError(PlannerError):
    """A device that does not exist on this machine, or a spelling torch does not know."""


def resolve_device(spec: str | torch.device | None = "cpu") -> torch.device:
    """The torch.device for `spec` (None or "cpu": the CPU; "auto": CUDA when available, else the CPU)."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "cpu").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f"--device {spec!r}: expected one of {', '.join(DEVICE_CHOICES)}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceError(f"--device {spec!r}: only cpu and cuda are supported")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {spec!r}: no CUDA device on this machine (torch {torch.__version__}); use cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
