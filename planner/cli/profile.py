"""`planner profile`: measure this device for a model and write a profile file (then plan with it)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from planner.cli import checks as check
from planner.cli._model import (
    add_data_args,
    add_model_args,
    add_quantizer_arg,
    data_from_args,
    model_from_args,
)
from planner.config import ARCH_LATENT, DEFAULT_EDGE_ACTIVE_W, DEFAULT_EDGE_IDLE_W, DEFAULT_INPUT_FORMATS
from planner.devices import DEVICE_HELP
from planner.profile.power import parse_power
from planner.profile.settings import ProfileSettings
from planner.profile.store import ProfileKey
from planner.runtime.options import EdgeOptions
from planner.types import AutoencoderKind, Role


def _setting(name: str, **kw) -> dict:
    """argparse keywords of the flag for ProfileSettings field `name`: its rule as the type, its default."""
    return {"type": check.option(ProfileSettings, name), "default": check.default(ProfileSettings, name), **kw}


def register(sub) -> None:
    p = sub.add_parser("profile", help="measure per-cut times, payload bytes and accuracy on this device")
    add_model_args(p, required=False)
    add_data_args(p)
    arch = p.add_argument_group("architecture-only profile (random weights, payloads from the latent-shape rule, "
                                "accuracy unknown)")
    arch.add_argument("--arch", default=None, help="profile an architecture instead of --model: resnet18, resnet50, "
                                                   "mobilenet_v2, vgg16, vgg16_bn or torchvision:NAME")
    arch.add_argument("--input", default=None, metavar="CxHxW", help="input shape for --arch (default 3x224x224)")
    arch.add_argument("--latent", type=check.positive_number, default=ARCH_LATENT,
                      help="latent width of the assumed autoencoder: channels (>= 1) or a fraction of C (default 8)")
    arch.add_argument("--bits", default=None, help="bitwidths for --arch, e.g. 2,4,8 (default 2,3,4,6,8)")
    arch.add_argument("--input-format", default="jpeg_q90", choices=["raw", "jpeg_q90", "jpeg_q75", "png"],
                      help="how the cloud-only plan ships the photo (default jpeg_q90)")
    arch.add_argument("--images", default=None, help="photo file or folder for the input size (default: "
                                                     "matplotlib's sample photo)")
    p.add_argument("--role", choices=[r.value for r in Role], default=Role.BOTH)
    p.add_argument("--out", default=None, help="profile file (default: profiles/MODEL_ROLE_CPU-Nt.json)")
    p.add_argument("--threads", **_setting("threads", help="torch threads (default: 1 for edge, all otherwise)"))
    p.add_argument("--batch", **_setting("batch"))
    p.add_argument("--repeats", **_setting("repeats", help="minimum timed repeats per stage"))
    p.add_argument("--max-seconds", **_setting("max_seconds", help="time cap per stage"))
    p.add_argument("--device", type=check.device, default=None,
                   help=DEVICE_HELP + "; default auto for --role cloud, else cpu (an edge runs on its CPU)")
    p.add_argument("--batch-sizes", type=check.int_list(1), default=None, metavar="N,N,...",
                   help="cloud: also time decoder + tail at these batch sizes, e.g. 1,4,16,64 (what a dynamically "
                        "batching server runs; the load-aware estimate reads them)")
    p.add_argument("--edge-slowdown", type=check.option(EdgeOptions, "edge_slowdown"), default=None, metavar="K",
                   help="emulate a weak edge K times slower (role edge): the measured profile scaled by K and "
                        "marked so, as `planner run --edge-slowdown K` stretches every edge computation")
    p.add_argument("--cpu-quota", **_setting("cpu_quota"),
                   help="emulate a weak edge: run the edge side on this fraction of one core (root, cgroups)")
    add_quantizer_arg(p)
    p.add_argument("--autoencoder", default=None, metavar="FILE|shared|independent|none",
                   help="autoencoder file from `planner train-ae --out`, a zoo model's committed shared/independent "
                        "one, or none (raw cuts only); default: shared for the zoo, none for your own model")
    p.add_argument("--float16", action="store_true", help="also profile the float16 raw feature")
    p.add_argument("--input-formats", type=check.input_formats, default=DEFAULT_INPUT_FORMATS, metavar="LIST",
                   help="cloud-only also sends the image input as these lossy files, each a candidate (uint8 "
                        f"images only; default {','.join(DEFAULT_INPUT_FORMATS)}; none: lossless only)")
    p.add_argument("--remeasure-accuracy", action="store_true",
                   help="measure the accuracy table again instead of reusing the cache or the autoencoder's card")
    p.add_argument("--save-accuracy", action="store_true",
                   help="write the measured accuracy table into the autoencoder's card (it travels with the weights)")
    p.add_argument("--all-cuts", action="store_true",
                   help="also profile the cuts that only repeat their neighbour (padding, dropout, identity)")
    p.add_argument("--edge-power-w", type=check.checked(parse_power), default=None, metavar="ACTIVE[,IDLE]",
                   help="declare the edge's power in watts (recorded as declared); default: measured with RAPL "
                        "(Linux powercap) where readable, else none recorded and plans assume "
                        f"{DEFAULT_EDGE_ACTIVE_W:g},{DEFAULT_EDGE_IDLE_W:g}")
    p.add_argument("--payload-samples", **_setting("payload_samples", help="test images for payload statistics"))
    p.add_argument("--accuracy-limit", **_setting("accuracy_limit", help="test images for accuracy (default: all)"))
    p.add_argument("--edge-runtime", choices=("torch", "onnxruntime"), default="torch",
                   help="what runs the edge side: PyTorch eager (default) or ONNX Runtime on the graphs of --onnx")
    p.add_argument("--cloud-runtime", choices=("torch", "onnxruntime"), default="torch",
                   help="what runs the cloud side (as `planner serve --runtime`)")
    p.add_argument("--onnx", default=None, metavar="DIR", help="export folder from `planner export` (--cuts all)")
    p.add_argument("--csv", default=None, metavar="DIR", help="also export the tables as CSV files to DIR")
    p.set_defaults(func=run)


def summary(profile) -> str:
    """A short table: per cut, head/tail ms and the payload at each bitwidth."""
    rows = [["cut", "shape", "head ms", "tail ms", "f32 B"] + [f"{b}b B" for b in profile.bits]]
    fmt = lambda t: "-" if t is None else f"{t.median:.3f}"  # noqa: E731
    for c in profile.cuts:
        rows.append([c.id, "x".join(map(str, c.shape)), fmt(c.head_ms), fmt(c.tail_ms), str(c.raw["float32"].bytes)]
                    + [f"{c.bits[b].bytes_mean:.0f}" if b in c.bits else "-" for b in profile.bits])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
           for r in rows]
    inp = profile.input
    acc = "unknown" if profile.backbone_accuracy is None else f"{profile.backbone_accuracy}%"
    metric = profile.settings.get("metric") or "accuracy"
    out.append(f"input: {inp.raw_bytes} B raw, {inp.compressed_bytes:.0f} B compressed; whole model "
               f"{profile.whole_model_ms.median:.3f} ms; backbone {metric} {acc}")
    if inp.formats:
        out.append("input as a lossy file: " + ", ".join(
            f"{f} {e.bytes_mean:.0f} B ({'-' if e.accuracy is None else f'{e.accuracy:g}%'})"
            for f, e in inp.formats.items()))
    return "\n".join(out)


def run(args) -> int:
    import time

    from planner.devices import device_slug, resolve_device
    from planner.errors import ProfileError
    from planner.execution.factory import assemble
    from planner.profile.measure import profile_pipeline
    from planner.profile.quota import check_available
    from planner.profile.schema import Profile

    device = resolve_device(args.device or ("auto" if args.role == "cloud" and not args.arch else "cpu"))
    if device.type != "cpu" and (args.role != "cloud" or args.arch or args.cloud_runtime != "torch"):
        raise ProfileError(f"--device {args.device} profiles the cloud side of a --model with the torch runtime: "
                           "use it with --role cloud (edges, --arch and ONNX Runtime profile on the CPU)")
    if args.batch_sizes and (args.role == "edge" or args.arch):
        raise ProfileError("--batch-sizes times the cloud's batched decoder + tail: use it with --role cloud or both "
                           "and --model")
    args.device = str(device)
    if args.cpu_quota is not None:
        check_available()
    if args.edge_slowdown is not None and not (args.role == "edge" and 1.0 <= args.edge_slowdown < float("inf")):
        raise ProfileError("--edge-slowdown K (a finite number >= 1) emulates a weak edge: use it with --role edge")
    if (args.arch is None) == (args.model is None):
        raise ProfileError("give --model (a zoo model with its trained autoencoder) or --arch (an architecture "
                           "with random weights), exactly one")
    if args.arch:
        return run_arch(args)
    start = time.perf_counter()
    settings = ProfileSettings(role=args.role, threads=args.threads, batch=args.batch, repeats=args.repeats,
                               max_seconds=args.max_seconds, device=args.device, cpu_quota=args.cpu_quota,
                               payload_samples=args.payload_samples, accuracy_limit=args.accuracy_limit,
                               float16=args.float16, input_formats=args.input_formats, all_cuts=args.all_cuts,
                               remeasure_accuracy=args.remeasure_accuracy, save_accuracy=args.save_accuracy,
                               batch_sizes=tuple(args.batch_sizes or ()))
    loaded = model_from_args(args)
    autoencoder = args.autoencoder or ("shared" if loaded.zoo else "none")
    data = data_from_args(args, loaded, split="test")
    pipeline = assemble(loaded, autoencoder, args.quantizer)
    onnx, on_edge, on_cloud = onnx_sides(pipeline, args)
    measured = profile_pipeline(pipeline, settings, data=data)
    if onnx is not None:
        from planner.profile.onnx import retime_profile

        measured = retime_profile(measured, onnx, settings, edge=on_edge, cloud=on_cloud)
    profile = with_power(Profile.from_dict(measured), args, lambda: pipeline.model(pipeline.input_tensor(data.raw[:1])))
    if args.edge_slowdown and args.edge_slowdown != 1.0:  # scaled, and marked as made for that slowdown
        profile = dataclasses.replace(profile.scaled(args.edge_slowdown),
                                      settings={**profile.settings, "edge_slowdown": args.edge_slowdown})
    kind = autoencoder if autoencoder in AutoencoderKind.choices() else AutoencoderKind.SHARED
    out = Path(args.out) if args.out else ProfileKey.of(args.model, args.role, profile.device["threads"],
                                                         quota=args.cpu_quota, kind=kind,
                                                         device=device_slug(device, profile.device.get("gpu")),
                                                         slowdown=args.edge_slowdown).path()
    if not args.out and onnx is not None:  # not a default profile: plans pick it only when given
        out = out.with_name(f"{out.stem}_onnxruntime.json")
    return write(profile, out, args.csv, start)

def with_power(profile, args, run_once):
    """The profile with the edge's power in `device.power`: declared (--edge-power-w), else measured with RAPL
    around whole-model runs (edge roles, `run_once` given), else none (plans assume the default, and say so)."""
    import torch

    from planner.profile.power import Rapl

    if args.role == "cloud":
        return profile
    if args.edge_power_w is not None:
        power = parse_power(args.edge_power_w)
    else:
        rapl = Rapl()
        if not rapl.available() or run_once is None or args.cpu_quota or args.edge_slowdown:
            why = (rapl.why if not rapl.available() else "RAPL measures the whole package at full speed, not an "
                   "emulated weak edge or an architecture-only run")
            print(f"edge power: not measured ({why}); plans assume {DEFAULT_EDGE_ACTIVE_W:g} W active, "
                  f"{DEFAULT_EDGE_IDLE_W:g} W idle unless you declare --edge-power-w ACTIVE[,IDLE]", file=sys.stderr)
            return profile
        with torch.inference_mode():
            power = rapl.measure(run_once)
    print(f"edge power: {power}")
    return dataclasses.replace(profile, device={**profile.device, "power": power.to_dict()})


BUSY_LOAD = 0.5  # load average beyond the profiler's own threads that makes a profile suspect


def busy_warning(profile) -> str | None:
    """A warning when the machine was busy while the profile was measured (its recorded load average)."""
    before = ((profile.settings.get("load_avg") or {}).get("before") or [0.0])[0]  # "after" holds the
    own = int(profile.device.get("threads") or 1)  # profiler's own multi-threaded accuracy pass: not a sign
    if before > BUSY_LOAD:
        return (f"warning: the machine was busy when profiling started (1-minute load average {before:.2f}; "
                f"{own} profiling thread(s)): timings may be inflated; re-profile on a quiet machine")
    return None


def onnx_sides(pipeline, args):
    """(OnnxPipeline or None, edge?, cloud?): the sides --edge-runtime / --cloud-runtime put on ONNX Runtime,
    checked before anything is measured."""
    import torch

    from planner.errors import ProfileError

    edge = args.edge_runtime == "onnxruntime" and args.role in ("edge", "both")
    cloud = args.cloud_runtime == "onnxruntime" and args.role in ("cloud", "both")
    if not (edge or cloud):
        if args.onnx:
            raise ProfileError("--onnx is for --edge-runtime / --cloud-runtime onnxruntime on the side profiled")
        return None, False, False
    from planner.execution.onnx_runtime import runtime_pipeline

    threads = args.threads or (1 if args.role == "edge" else torch.get_num_threads() or 1)
    onnx = runtime_pipeline(pipeline, "onnxruntime", args.onnx, threads=threads)
    onnx.check_complete()
    return onnx, edge, cloud


def write(profile, out: Path, csv: str | None, start: float) -> int:
    """Save the profile (and CSV tables), print its summary."""
    import time

    out.parent.mkdir(parents=True, exist_ok=True)
    profile.save(out)
    print(summary(profile))
    warning = busy_warning(profile)
    if warning:
        print(warning, file=sys.stderr)
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")
    if csv:
        for path in profile.to_csv(csv, stem=out.stem):
            print(f"wrote {path}")
    return 0


def run_arch(args) -> int:
    """`--arch NAME`: time the architecture with random weights; payloads from the rule; accuracy unknown."""
    import time

    from planner.errors import ProfileError
    from planner.profile.arch import ArchSettings, model_id, profile_arch
    from planner.profile.schema import Profile
    from planner.zoo import parse_shape

    if args.weights or args.input_shape:
        raise ProfileError("--arch profiles random weights at --input CxHxW; --weights and --input-shape are for "
                           "--model")
    try:
        bits = tuple(int(b) for b in args.bits.split(",")) if args.bits else ArchSettings.bits
    except ValueError:
        raise ProfileError(f"--bits takes comma-separated integers, e.g. 2,4,8, got {args.bits!r}") from None
    start = time.perf_counter()
    settings = ArchSettings(role=args.role, input_shape=parse_shape(args.input) if args.input else None,
                            threads=args.threads, batch=args.batch, repeats=args.repeats, max_seconds=args.max_seconds,
                            device=args.device, cpu_quota=args.cpu_quota, bits=bits, latent=args.latent,
                            autoencoder=AutoencoderKind.weights(args.autoencoder or AutoencoderKind.SHARED),
                            input_format=args.input_format, images=args.images, float16=args.float16)
    profile = with_power(Profile.from_dict(profile_arch(args.arch, settings)), args, None)
    key = ProfileKey.of(model_id(args.arch, tuple(profile.input.shape)), args.role, profile.device["threads"],
                        quota=args.cpu_quota, latent=args.latent)
    out = Path(args.out) if args.out else key.path(arch=True)
    print(f"{args.arch}: {len(profile.cuts)} cuts, the autoencoder serves "
          f"{sum(bool(c.bits) for c in profile.cuts)}; payloads from the latent-shape rule (latent {args.latent:g}, "
          f"no lossless stage); accuracy unknown (plan with --assume-loss)")
    return write(profile, out, args.csv, start)
