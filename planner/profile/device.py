"""Facts about the device a profile was measured on (psutil + torch), recorded in every profile."""

from __future__ import annotations

import platform
import re


def cpu_model() -> str:
    """The CPU's marketing name, e.g. 'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz'."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_slug() -> str:
    """A short file-name-safe id of the CPU, e.g. 'xeon-8375c'."""
    name = cpu_model().lower()
    name = re.sub(r"\(r\)|\(tm\)|cpu|@.*|processor|intel|amd|core", " ", name)
    parts = [p for p in re.split(r"[^a-z0-9]+", name) if p and p not in {"platinum", "gold", "silver"}]
    return "-".join(parts[:3]) or platform.machine()


def device_facts(threads: int | None = None, cpu_quota: float | None = None, device: str = "cpu") -> dict:
    """CPU model, cores, threads, frequency, memory, OS, torch version; on a CUDA `device` the GPU's name, driver,
    memory and compute capability."""
    import psutil
    import torch

    from planner.devices import gpu_facts

    freq = psutil.cpu_freq()
    gpu = gpu_facts(device) if device.startswith("cuda") and torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "threads": threads or torch.get_num_threads(),
        "freq_mhz": round(freq.max or freq.current, 1) if freq else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": gpu and gpu["name"],
        "cpu_quota": cpu_quota,
        **({"gpu_driver": gpu["driver"], "gpu_memory_gb": gpu["memory_gb"], "gpu_capability": gpu["capability"],
            "cuda": gpu["cuda"], "device": device} if gpu else {}),
    }
