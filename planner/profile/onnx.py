"""Profile times measured in ONNX Runtime: re-time a profile's stages with the exported graphs that deploy.

`retime_profile` takes a profile dict measured by `profile_pipeline` (payload bytes and accuracy: the codes
agree with PyTorch's, see tests/test_onnx.py) and replaces the times of the side(s) it is asked for with the
graphs an `OnnxPipeline` runs, in the same warm-up/repeat scheme and under the same CPU quota. The profile
keeps its meaning: `head_ms` is the head graph, `encode_ms` the fused edge graph (head + encoder + quantizer)
plus the codec minus the head graph, `tail_ms` the tail graph, `decode_ms` the codec plus the fused cloud graph
(dequantize + decoder + tail) minus the tail graph, so head + encode and decode + tail are what runs.
"""

from __future__ import annotations

from planner.compress import codec
from planner.profile.quota import cpu_quota
from planner.profile.timing import Timing, measure


def minus(fused: Timing, part: Timing) -> Timing:
    """The time of a fused graph beyond `part` (its median taken off every statistic, floored at 0)."""
    cut = lambda v: max(v - part.median, 0.0)  # noqa: E731
    return Timing(cut(fused.median), fused.iqr, fused.n, cut(fused.p10), cut(fused.p90))


def retime_profile(profile: dict, pipeline, settings, *, edge: bool, cloud: bool) -> dict:
    """Re-measure the edge and/or cloud times of `profile` with `pipeline` (an OnnxPipeline); returns it."""
    from planner.data import load_arrays

    pipeline.check_complete()
    raw = load_arrays("test")[0][: settings.batch]
    x = pipeline.input_array(raw)

    def t(fn) -> Timing:
        return measure(fn, min_repeats=settings.repeats, max_seconds=settings.max_seconds)

    def on_edge(fn) -> Timing:
        with cpu_quota(settings.cpu_quota, scope="thread"):
            return t(fn)

    for entry in profile["cuts"]:
        cut = entry["id"]
        feature = pipeline.head_feature(x, cut)
        head = on_edge(lambda c=cut: pipeline.head_feature(pipeline.input_array(raw), c)) if edge else None
        tail = t(lambda c=cut, f=feature: pipeline.tail_scores(f, c)) if cloud else None
        if edge:
            entry["head_ms"] = head.to_dict()
        if cloud:
            entry["tail_ms"] = tail.to_dict()
        for b_text, e in entry["bits"].items():
            b = int(b_text)
            if edge:
                fused = on_edge(lambda c=cut, b=b: codec.encode(pipeline.edge_codes(pipeline.input_array(raw), c, b), c, b))
                e["encode_ms"] = minus(fused, head).to_dict()
            if cloud:
                payload = codec.encode(pipeline.edge_codes(x, cut, b), cut, b)
                fused = t(lambda c=cut, b=b, p=payload: pipeline.cloud_scores(codec.decode(p).array, c, b))
                e["decode_ms"] = minus(fused, tail).to_dict()
    if edge:
        profile["whole_model_ms"] = on_edge(lambda: pipeline.model_scores(pipeline.input_array(raw))).to_dict()
    elif cloud:
        profile["whole_model_ms"] = t(lambda: pipeline.model_scores(x)).to_dict()
    _record(profile, pipeline, edge, cloud)
    return profile


def _record(profile: dict, pipeline, edge: bool, cloud: bool) -> None:
    """Say in the profile which side's times come from ONNX Runtime and from which export."""
    from planner.execution.onnx_export import file_sha256
    from planner.execution.onnx_runtime import import_onnxruntime

    ort = import_onnxruntime()
    settings = profile["settings"]
    version = f"onnxruntime {ort.__version__}"
    for side, on in (("edge_runtime", edge), ("cloud_runtime", cloud)):
        if on:
            settings[side] = version
    settings["onnx_manifest_sha256"] = file_sha256(pipeline.folder / "manifest.json")
    sides = " and ".join(s for s, on in (("edge", edge), ("cloud", cloud)) if on)
    note = f"{sides} times measured in {version} (CPU EP, {pipeline.graphs.threads} intra-op threads)"
    profile["notes"] = f"{profile['notes']}; {note}" if profile.get("notes") else note
