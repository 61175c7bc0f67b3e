"""The autoencoder file format: `save_autoencoder` (config + state, float16 by default, versioned) and
`load_autoencoder_file`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from planner.compress.aeconfig import AEConfig
from planner.compress.autoencoder import Autoencoder, build_autoencoder
from planner.compress.entropy import EntropyBook
from planner.errors import CompressError

FORMAT_VERSION = 2  # 2: linear encoder, slimmable latent widths (version 1 files: retrain)


# -- files --------------------------------------------------------------------------------------------
def save_autoencoder(ae: Autoencoder, path: str | Path, half: bool = True) -> str:
    """Write config + weights (float16 on disk when `half`, to keep committed files small); return the sha256."""
    state = {k: (v.half() if half and v.is_floating_point() else v).clone() for k, v in ae.state_dict().items()}
    blob = {"format": FORMAT_VERSION, "kind": ae.kind, "config": json.dumps(ae.config.to_dict()), "state": state}
    if len(ae.entropy):  # static entropy models per (cut, width, bits): optional, older files have none
        blob["entropy"] = ae.entropy.to_state()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_autoencoder_file(path: str | Path) -> Autoencoder:
    """Rebuild an autoencoder written by `save_autoencoder` (loaded with weights_only=True), in eval mode."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        import io

        blob = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        if blob.get("format") != FORMAT_VERSION:
            raise CompressError(f"{path}: autoencoder file format {blob.get('format')!r}, this planner reads "
                                f"{FORMAT_VERSION} (slimmable widths): retrain it with `planner train-ae`")
        ae = build_autoencoder(AEConfig.from_dict(json.loads(blob["config"])), blob["kind"])
        ae.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()})
        ae.entropy = EntropyBook.from_state(blob.get("entropy"))
    except CompressError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad or foreign file
        raise CompressError(f"cannot load autoencoder {path}: {exc}") from None
    ae.id = f"{ae.config.extra.get('model', path.stem)}/{ae.kind}@{hashlib.sha256(raw).hexdigest()[:8]}"
    ae.path = path  # its card (accuracy tables measured with it) is path.with_suffix(".json")
    return ae.eval()
