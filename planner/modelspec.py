"""One way to name a model in every command and on both sides of a split: `load_model(...)` -> `LoadedModel`.

A model is a zoo name (`resnet-fmnist`), a factory `package.module:factory` (called without arguments) or an
`nn.Module`, plus optional weights (a state_dict file, loaded with weights_only=True), the per-sample input
shape and dtype, the leaf modules torch.fx must keep whole, and how raw samples become the model's input
(`Preprocess`). The weights are identified by the sha256 of their state_dict, so that caches, profiles and the
cloud server can tell two sets of weights of the same architecture apart.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from planner.errors import DataError, ZooError

DTYPES = {"float32": torch.float32, "int64": torch.int64}


def parse_dtype(text: str | torch.dtype | None) -> torch.dtype:
    """'float32' / 'int64' (or a torch dtype) -> the torch dtype of the model input."""
    if text is None:
        return torch.float32
    if isinstance(text, torch.dtype):
        if text not in DTYPES.values():
            raise ZooError(f"input dtype {text} is not supported; choose {', '.join(DTYPES)}")
        return text
    if text not in DTYPES:
        raise ZooError(f"bad --input-dtype {text!r}; choose {', '.join(DTYPES)}")
    return DTYPES[text]


def import_object(spec: str, what: str) -> Any:
    """'package.module:Name' -> the object it names; a clear error otherwise."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ZooError(f"bad {what} {spec!r}: expected package.module:Name")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ZooError(f"cannot import {what} {spec!r}: {exc}") from None
    return obj


def parse_leaf_modules(text: str | tuple | list | None) -> tuple[type, ...]:
    """'pkg.mod:Block,pkg.mod:Other' (or a sequence of classes / such strings) -> a tuple of module classes."""
    if not text:
        return ()
    items = [t for t in text.split(",") if t.strip()] if isinstance(text, str) else list(text)
    out = []
    for item in items:
        cls = import_object(item.strip(), "leaf module") if isinstance(item, str) else item
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ZooError(f"leaf module {item!r} is not an nn.Module class")
        out.append(cls)
    return tuple(out)


def parse_normalize(text: str | tuple | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """'0.5,0.25' or '0.48,0.45,0.40,0.22,0.22,0.22' (means then stds, one per channel) -> (mean, std)."""
    if text is None or text == "":
        return None
    if isinstance(text, tuple) and len(text) == 2 and not isinstance(text[0], (int, float)):
        mean, std = (tuple(float(v) for v in t) for t in text)
    else:
        try:
            values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
        except ValueError:
            raise DataError(f"bad --normalize {text!r}: expected MEAN,STD numbers (per channel: means then stds)") \
                from None
        if len(values) % 2 or not values:
            raise DataError(f"bad --normalize {text!r}: give as many means as stds (MEAN,STD or M1,M2,M3,S1,S2,S3)")
        mean, std = tuple(values[: len(values) // 2]), tuple(values[len(values) // 2:])
    if any(s <= 0 for s in std):
        raise DataError(f"--normalize standard deviations must be positive, got {std}")
    return mean, std


def state_sha256(model: nn.Module) -> str:
    """sha256 of a model's state_dict (names, dtypes, shapes and bytes): which weights these are."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Preprocess:
    """Raw samples -> model input. uint8 pixels are scaled to [0, 1] (floats are taken as they are), then
    normalized per channel when `mean`/`std` are given; integer models get int64 tensors. `zoo` keeps the
    built-in models' rule: uint8 Fashion-MNIST images are normalized, float tensors are already model input."""

    dtype: torch.dtype = torch.float32
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    zoo: bool = False

    def __call__(self, raw) -> torch.Tensor:
        if self.zoo:
            if isinstance(raw, torch.Tensor) and raw.is_floating_point():
                return raw
            from planner.data import normalize

            return normalize(np.asarray(raw))
        x = raw if isinstance(raw, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(raw))
        if not self.dtype.is_floating_point:
            return x.to(self.dtype)
        x = x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)
        if self.mean is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            x = (x - torch.tensor(self.mean).view(shape)) / torch.tensor(self.std).view(shape)
        return x


@dataclass
class LoadedModel:
    """A model ready to split: the module (eval mode), its name as profiles and servers know it, the input it
    takes, the leaf modules for tracing, how raw samples become its input and the hash of its weights."""

    model: nn.Module
    name: str
    input_shape: tuple[int, ...]
    input_dtype: torch.dtype = torch.float32
    leaf_modules: tuple[type, ...] = ()
    preprocess: Preprocess = field(default_factory=Preprocess)
    weights_sha256: str = ""
    zoo: bool = False
    classes: int = 0
    info: Any = None

    def example(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, *self.input_shape, dtype=self.input_dtype)

    def describe(self) -> dict:
        return {"model": self.name, "input_shape": list(self.input_shape),
                "input_dtype": str(self.input_dtype).replace("torch.", ""),
                "leaf_modules": [f"{c.__module__}:{c.__qualname__}" for c in self.leaf_modules],
                "normalize": None if self.preprocess.mean is None else [list(self.preprocess.mean),
                                                                         list(self.preprocess.std)],
                "weights_sha256": self.weights_sha256}


def model_label(model: Any) -> str:
    """A short name of anything passed as `model=` (never a module's multi-line repr)."""
    if isinstance(model, LoadedModel):
        return model.name
    if isinstance(model, nn.Module):
        return type(model).__name__
    name = getattr(model, "name", None)
    return name if isinstance(name, str) else str(model)[:80]


def load_model(model, weights=None, input_shape=None, input_dtype=None, leaf_modules=None, normalize=None,
               trained: bool = True) -> LoadedModel:
    """A zoo name, a `package.module:factory` spec or an nn.Module (or a LoadedModel, returned as is) -> a
    LoadedModel. `input_shape` is a tuple or '3x64x64'; zoo models default to their own shape and preprocessing.
    """
    from planner import zoo

    if isinstance(model, LoadedModel):
        return model
    dtype = parse_dtype(input_dtype)
    shape = zoo.parse_shape(input_shape) if isinstance(input_shape, str) else input_shape
    leaves = parse_leaf_modules(leaf_modules)
    norm = parse_normalize(normalize)
    if isinstance(model, nn.Module):
        module, name, info = model.eval(), type(model).__name__, None
        if weights:
            _load_state(module, weights, name)
        shape = shape or getattr(model, "input_shape", None)
        if shape is None:
            raise ZooError(f"{name}: give the input shape per sample (input_shape=(3, 64, 64) or '3x64x64')")
    elif isinstance(model, str):
        module, info = zoo.resolve(model, weights, tuple(shape) if shape else None, trained=trained)
        name = model
        shape = shape or info.input_shape
    else:
        raise ZooError(f"model must be a zoo name, 'package.module:factory' or an nn.Module, got "
                       f"{type(model).__name__}")
    is_zoo = isinstance(model, str) and ":" not in model
    if is_zoo and tuple(shape) != tuple(info.input_shape):
        raise ZooError(f"zoo model {name!r} takes input shape {'x'.join(map(str, info.input_shape))}, not "
                       f"{'x'.join(map(str, shape))}")
    if is_zoo and norm is None:
        norm = zoo.normalization(name)  # an ImageNet model's own scaling; None: the Fashion-MNIST rule
        pre = Preprocess(zoo=True) if norm is None else Preprocess(dtype, *norm)
    else:
        pre = Preprocess(dtype, *(norm if norm else (None, None)))
    return LoadedModel(module, name, tuple(int(s) for s in shape), dtype, leaves, pre, state_sha256(module), is_zoo,
                       int(getattr(info, "classes", 0) or getattr(module, "num_classes", 0) or 0), info)


def _load_state(module: nn.Module, weights, name: str) -> None:
    try:
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad weights file
        raise ZooError(f"cannot load weights {weights} into {name}: {str(exc).strip().splitlines()[0]}") from None
