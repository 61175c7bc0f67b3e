"""Where torch runs: the one device resolver (`--device auto|cpu|cuda[:N]` on every command that runs a model).

`parse_device` checks the spelling only (torch-free, for argparse); `resolve_device` turns a spelling into a
`torch.device` that exists here ("auto": the first CUDA device when torch sees one, else the CPU; None: the CPU),
and asking for CUDA where there is none is one clear `DeviceError`, never a trace. `synchronize` makes a CUDA timing honest (a
no-op on the CPU); `gpu_facts` is what a profile records of a GPU; `device_slug` names it in a profile's file name.
"""

from __future__ import annotations

import re
import subprocess

from planner.errors import PlannerError

AUTO = "auto"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
DEVICE_HELP = "where the model runs: auto (CUDA when torch sees one, else CPU), cpu, cuda or cuda:N"
_SPELLING = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


class DeviceError(PlannerError):
    """A device that is misspelled or not present on this machine."""


def parse_device(text) -> str:
    """The canonical spelling of a device ('auto', 'cpu', 'cuda', 'cuda:N'), checked without torch."""
    spec = str(text).strip().lower()  # a torch.device prints as 'cpu' or 'cuda:N'
    m = _SPELLING.fullmatch(spec)
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise DeviceError(f"unknown device {text!r}: expected one of {', '.join(DEVICE_CHOICES)}")
    return spec


def resolve_device(spec="cpu"):
    """A `torch.device` that exists here for 'auto' | 'cpu' | 'cuda[:N]' (or a torch.device; None: the CPU);
    DeviceError when the spelling is wrong or CUDA (or that GPU) is not available."""
    import torch

    spec = parse_device("cpu" if spec is None else spec)
    cuda = torch.cuda.is_available()
    if spec == AUTO:
        return torch.device("cuda:0" if cuda else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not cuda:
        raise DeviceError(f"device {spec!r} asked for, but there is no CUDA device on this machine (torch "
                          f"{torch.__version__}): use --device cpu or auto")
    index = int(spec.split(":")[1]) if ":" in spec else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} asked for, but this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


def is_cuda(device) -> bool:
    return str(device).startswith("cuda")


def synchronize(device) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); nothing on the CPU."""
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(device)


def gpu_facts(device) -> dict | None:
    """{name, driver, memory_gb, capability} of a CUDA device (None on the CPU)."""
    if not is_cuda(device):
        return None
    import torch

    props = torch.cuda.get_device_properties(device)
    return {"name": props.name, "driver": _driver_version(), "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda}


def _driver_version() -> str | None:
    """The NVIDIA driver's version (nvidia-smi), None when it cannot be asked."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def device_slug(device, gpu_name: str | None = None) -> str:
    """A file-name-safe short name of a GPU for profile names ('h200' of 'NVIDIA H200'), or 'cpu'."""
    if not is_cuda(device):
        return "cpu"
    name = (gpu_name or (gpu_facts(device) or {}).get("name") or "cuda").lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", name) if p and p not in {"nvidia", "geforce", "tesla", "sxm",
                                                                             "pcie", "nvl"}]
    return "-".join(parts[:2]) or "cuda"
