"""The weights files that ship with the package, and where `train-ae` writes instead: a new file by default,
the shipped one only when told so (`--overwrite-shipped`), so a typo never replaces committed weights."""

from __future__ import annotations

from pathlib import Path

from planner.errors import CompressError

TRAINED_DIR = Path("runs") / "ae"  # where `planner train-ae` writes a zoo model's autoencoder by default


def shipped_dir() -> Path:
    from planner.compress.zoo import WEIGHTS_DIR

    return WEIGHTS_DIR


def is_shipped(path: str | Path) -> bool:
    """Whether `path` (or its .json card) is inside the package's committed weights folder."""
    try:
        Path(path).resolve().relative_to(shipped_dir().resolve())
    except ValueError:
        return False
    return True


def training_output(model_name: str, kind: str, out: str | Path | None = None, *, zoo: bool = True,
                    overwrite_shipped: bool = False) -> Path:
    """The file a training run writes: `out`, else (zoo models) `runs/ae/MODEL-KIND.pt` in the working directory; a
    path among the shipped weights only with `overwrite_shipped`."""
    if out is None:
        if not zoo:
            raise CompressError("give --out FILE for the autoencoder of your own model")
        out = TRAINED_DIR / f"{model_name}-{kind}.pt"
    out = Path(out)
    if is_shipped(out) and not overwrite_shipped:
        raise CompressError(f"{out} is a weights file shipped with planner: write elsewhere (--out FILE), or pass "
                            "--overwrite-shipped to replace it")
    if out.is_dir():
        raise CompressError(f"--out {out} is a directory, not a weights file")
    return out
