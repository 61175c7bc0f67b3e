"""Built-in backbones by name: `planner.zoo.load("resnet-fmnist") -> (model, ModelInfo)`.

Each entry is a builder in a string-keyed registry; trained weights made by `planner train-backbone NAME`
ship beside this file (`weights/NAME.pt`, loaded with `weights_only=True`) with a JSON card of how they
were made and how well they score.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from planner.errors import ZooError

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass
class ModelInfo:
    """What a zoo model is and how it was trained (the weights card)."""

    name: str
    input_shape: tuple[int, ...]
    classes: int
    description: str
    test_accuracy: float | None = None
    train: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Entry:
    builder: Callable
    input_shape: tuple[int, ...]
    classes: int
    description: str
    train: dict  # default training recipe for `planner train-backbone`


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, *, input_shape, classes: int, description: str, **train):
    """Decorator adding a builder (callable returning an untrained nn.Module) to the zoo."""

    def deco(fn):
        _REGISTRY[name] = _Entry(fn, tuple(input_shape), classes, description, train)
        return fn

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ZooError(f"unknown zoo model {name!r}; known models: {', '.join(names())}")
    return _REGISTRY[name]


def recipe(name: str) -> dict:
    """The default training recipe of a zoo model (`planner train-backbone`): epochs, learning rate, ..."""
    return dict(_entry(name).train)


def build(name: str):
    """An untrained instance of a zoo model."""
    return _entry(name).builder()


def info(name: str) -> ModelInfo:
    """The model's card: shape, classes and, when weights exist, the test accuracy the training script measured."""
    e = _entry(name)
    card_path = WEIGHTS_DIR / f"{name}.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    return ModelInfo(name, e.input_shape, e.classes, e.description, card.get("test_accuracy"), card.get("train", {}))


def weights_path(name: str) -> Path:
    _entry(name)
    return WEIGHTS_DIR / f"{name}.pt"


def load(name: str, weights: str | Path | None = None):
    """The trained model in eval mode and its ModelInfo. Missing weights -> ZooError with the command to make them."""
    import torch

    model = build(name)
    path = Path(weights) if weights else weights_path(name)
    if not path.exists():
        raise ZooError(f"no trained weights for {name!r} at {path}; make them with `planner train-backbone {name}`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad weights file
        raise ZooError(f"cannot load weights {path} into {name!r}: {exc}") from None
    return model.eval(), info(name)


def resolve(spec: str, weights: str | Path | None = None, input_shape: tuple[int, ...] | None = None,
            trained: bool = True):
    """A zoo name or a user model `package.module:factory` -> (model in eval mode, ModelInfo).

    User factories are called without arguments; `weights` (a state_dict file) is loaded with weights_only=True.
    Zoo models without trained weights come back untrained when `trained` is False.
    """
    import importlib

    import torch

    if ":" not in spec:
        if trained or weights or weights_path(spec).exists():
            return load(spec, weights)
        return build(spec).eval(), info(spec)
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ZooError(f"cannot import model factory {spec!r}: {exc}") from None
    model = factory()
    if weights:
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001
            raise ZooError(f"cannot load weights {weights} into {spec}: {exc}") from None
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None:
        raise ZooError(f"{spec}: give the input shape per sample (e.g. --input-shape 3x224x224)")
    return model.eval(), ModelInfo(spec, tuple(input_shape), getattr(model, "num_classes", 0), "user model")


def parse_shape(text: str) -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224)."""
    try:
        shape = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ZooError(f"bad shape {text!r}: expected dimensions joined by x, e.g. 3x224x224") from None
    if not shape or any(d <= 0 for d in shape):
        raise ZooError(f"bad shape {text!r}: every dimension must be a positive integer")
    return shape


@register("vgg-fmnist", input_shape=(1, 28, 28), classes=10,
          description="VGG-style chain: 6 conv-BN-ReLU blocks, 3 max-pools, linear classifier", epochs=10)
def _vgg_fmnist():
    from planner.zoo.models import VGGFMNIST

    return VGGFMNIST()


@register("resnet-fmnist", input_shape=(1, 28, 28), classes=10,
          description="ResNet-style DAG: stem + 4 basic blocks with skip connections, global pool, linear", epochs=10)
def _resnet_fmnist():
    from planner.zoo.models import ResNetFMNIST

    return ResNetFMNIST()
