"""One factory assembles what runs a model: the model, its autoencoder, its raw quantizer and the runtime (PyTorch
or ONNX Runtime), and for an edge the profiles it plans with. `planner.run`, `planner run/serve/demo`, the Ray
backend and the cloud handlers all build their pipelines here, so they load the same things the same way.
"""

from __future__ import annotations

from pathlib import Path

from planner.errors import CompressError, ProfileError
from planner.types import AutoencoderKind


def assemble(model, autoencoder=None, quantizer="auto", *, weights=None, input_shape=None, runtime: str = "torch",
             onnx: str | Path | None = None, threads: int | None = None):
    """The SplitPipeline of `model` (a zoo name, a spec string, an nn.Module or a LoadedModel) with `autoencoder`
    (None/'none', 'shared'/'independent' for a zoo model's committed one, a `planner train-ae` file or a loaded
    one) and the raw quantizer `quantizer` ('auto': a zoo model's committed one; a calibration file; None), run
    by `runtime` ('torch', or 'onnxruntime' on the export folder `onnx`)."""
    from planner.execution.onnx_runtime import runtime_pipeline
    from planner.execution.pipeline import SplitPipeline
    from planner.modelspec import load_model

    loaded = load_model(model, weights, input_shape=input_shape)
    return runtime_pipeline(SplitPipeline.from_model(loaded, autoencoder, quantizer), runtime, onnx, threads)


def cloud_pipeline(model, autoencoder=AutoencoderKind.SHARED, weights=None, *, quantizer="auto",
                   runtime: str = "torch", onnx=None, device="cpu"):
    """What a cloud server runs for `model` (see `assemble`), on `device` ('auto', 'cpu', 'cuda[:N]'; ONNX Runtime
    runs on the CPU)."""
    from planner.devices import DeviceError, resolve_device

    device = resolve_device(device)
    if runtime != "torch" and device.type != "cpu":
        raise DeviceError(f"the {runtime} runtime runs on the CPU here: use --device cpu (or --runtime torch)")
    pipeline = assemble(model, autoencoder, quantizer, weights=weights)
    if device.type != "cpu":
        pipeline.to(device)
    from planner.execution.onnx_runtime import runtime_pipeline

    return runtime_pipeline(pipeline, runtime, onnx)


def edge_pipeline(model, edge_profile, options=None):
    """What an edge runs for `model` planned with `edge_profile`: shapes default to the profile's input, the
    autoencoder to the zoo's committed one the profile was measured with; `options` (an EdgeOptions) names the
    autoencoder, quantizer and runtime. A SplitPipeline passed as `model` is only moved to the runtime asked."""
    from planner.execution.onnx_runtime import runtime_pipeline
    from planner.execution.pipeline import SplitPipeline
    from planner.modelspec import load_model, model_label
    from planner.runtime.options import EdgeOptions

    o = options or EdgeOptions()
    if isinstance(model, SplitPipeline):
        if o.edge_runtime == model.runtime and o.onnx is None:
            return model
        return runtime_pipeline(model, o.edge_runtime, o.onnx)
    name = model_label(model)
    if edge_profile.model != name:
        raise ProfileError(f"profile {edge_profile.name} is of model {edge_profile.model!r}, not {name!r}")
    shape = None if isinstance(model, str) and ":" not in model else tuple(edge_profile.input.shape)
    loaded = load_model(model, input_shape=shape)
    autoencoder = o.autoencoder
    if autoencoder is None and loaded.zoo:
        autoencoder = committed_kind(name, edge_profile.autoencoder)
    return assemble(loaded, autoencoder, o.quantizer, runtime=o.edge_runtime, onnx=o.onnx)


def profiles(model: str, edge=None, cloud=None, quota: float | None = None):
    """The (edge, cloud) Profiles: the files (or Profiles) given, else the ones the search path finds."""
    from planner.profile.schema import Profile
    from planner.profile.store import find_profiles

    if edge is None or cloud is None:
        e, c = find_profiles(model, quota=quota)
        edge, cloud = edge or e, cloud or c
    return tuple(p if isinstance(p, Profile) else Profile.load(p) for p in (edge, cloud))


def committed_kind(model: str, ae_id: str | None) -> AutoencoderKind | None:
    """Which committed autoencoder of a zoo model has this id (None for None): the one a profile was measured with."""
    from planner.compress.zoo import committed_id

    if ae_id is None:
        return None
    known = {}
    for kind in AutoencoderKind.trained():
        try:
            known[committed_id(model, kind)] = kind
        except CompressError:
            continue
    if ae_id not in known:
        raise CompressError(f"no committed autoencoder of {model!r} has the id {ae_id!r} (committed: "
                            f"{', '.join(known) or 'none'}); re-profile with the autoencoder you deploy, or pass it")
    return known[ae_id]
