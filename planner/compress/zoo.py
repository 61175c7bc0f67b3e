"""The committed autoencoder weights (planner/compress/weights/MODEL-KIND.pt), apart from the architectures (as
CompressAI keeps its zoo): `weights_path`, `load_autoencoder`, `committed_id`, `resolve_autoencoder`."""

from __future__ import annotations

from pathlib import Path

from planner.compress.aefile import load_autoencoder_file
from planner.compress.autoencoder import KINDS, Autoencoder
from planner.errors import CompressError

WEIGHTS_DIR = Path(__file__).parent / "weights"


def weights_path(model_name: str, kind: str = "shared") -> Path:
    return WEIGHTS_DIR / f"{model_name}-{kind}.pt"


def load_autoencoder(model_name: str, kind: str = "shared", path: str | Path | None = None) -> Autoencoder:
    """The committed autoencoder of a zoo model (`kind` "shared" or "independent") in eval mode; its `id` is
    "<model>/<kind>@<first 8 hex of the file's sha256>"."""
    if kind not in KINDS:
        raise CompressError(f"unknown autoencoder kind {kind!r}; choose {' or '.join(KINDS)}")
    p = Path(path) if path else weights_path(model_name, kind)
    if not p.exists():
        flag = " --independent" if kind == "independent" else ""
        raise CompressError(f"no {kind} autoencoder for {model_name!r} at {p}; make it with "
                            f"`planner train-ae --model {model_name}{flag}`")
    return load_autoencoder_file(p)


def committed_id(model_name: str, kind: str = "shared") -> str:
    """The id of a zoo model's committed autoencoder of this kind (CompressError when there is none)."""
    return load_autoencoder(model_name, kind).id


def resolve_autoencoder(loaded, spec) -> Autoencoder | None:
    """The autoencoder for a LoadedModel: None / 'none' (raw cuts only), 'shared' / 'independent' (a zoo
    model's committed one), a file from `planner train-ae --out` (refused when trained on other weights), or an
    autoencoder object (returned as is)."""
    if spec is None or spec == "none":
        return None
    if not isinstance(spec, (str, Path)):
        return spec
    if spec in KINDS:
        if not loaded.zoo:
            raise CompressError(f"{loaded.name} has no committed {spec} autoencoder: train one with `planner "
                                f"train-ae --model {loaded.name} ... --out AE.pt` and pass --autoencoder AE.pt")
        return load_autoencoder(loaded.name, kind=str(spec))
    path = Path(spec)
    if not path.is_file():
        raise CompressError(f"--autoencoder {spec!r}: no such file (or use shared, independent or none)")
    ae = load_autoencoder_file(path)
    trained_on = ae.config.extra.get("weights_sha256")
    if trained_on and trained_on != loaded.weights_sha256:
        raise CompressError(f"autoencoder {path} was trained on weights {trained_on[:12]} of "
                            f"{ae.config.extra.get('model')}, but the model has weights {loaded.weights_sha256[:12]}"
                            f"; train it for these weights")
    return ae
