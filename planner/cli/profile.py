"""`planner profile`: measure this device for a model and write a profile file (then plan with it)."""

from __future__ import annotations

from pathlib import Path

from planner.cli._model import add_model_args
from planner.profile.store import ProfileKey


def register(sub) -> None:
    p = sub.add_parser("profile", help="measure per-cut times, payload bytes and accuracy on this device")
    add_model_args(p, required=False)
    arch = p.add_argument_group("architecture-only profile (random weights, payloads from the latent-shape rule, "
                                "accuracy unknown)")
    arch.add_argument("--arch", default=None, help="profile an architecture instead of --model: resnet18, resnet50, "
                                                   "mobilenet_v2, vgg16, vgg16_bn or torchvision:NAME")
    arch.add_argument("--input", default=None, metavar="CxHxW", help="input shape for --arch (default 3x224x224)")
    arch.add_argument("--latent", type=float, default=8,
                      help="latent width of the assumed autoencoder: channels (>= 1) or a fraction of C (default 8)")
    arch.add_argument("--bits", default=None, help="bitwidths for --arch, e.g. 2,4,8 (default 2,3,4,6,8)")
    arch.add_argument("--input-format", default="jpeg_q90", choices=["raw", "jpeg_q90", "jpeg_q75", "png"],
                      help="how the cloud-only plan ships the photo (default jpeg_q90)")
    arch.add_argument("--images", default=None, help="photo file or folder for the input size (default: "
                                                     "matplotlib's sample photo)")
    p.add_argument("--role", choices=["edge", "cloud", "both"], default="both")
    p.add_argument("--out", default=None, help="profile file (default: profiles/MODEL_ROLE_CPU-Nt.json)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 for edge, all otherwise)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7, help="minimum timed repeats per stage")
    p.add_argument("--max-seconds", type=float, default=0.25, help="time cap per stage")
    p.add_argument("--device", default="cpu", help="cpu (cuda needs a GPU build of torch)")
    p.add_argument("--cpu-quota", type=float, default=None,
                   help="emulate a weak edge: run the edge side on this fraction of one core (root, cgroups)")
    p.add_argument("--autoencoder", default="shared", choices=["shared", "independent", "none"])
    p.add_argument("--float16", action="store_true", help="also profile the float16 raw feature")
    p.add_argument("--payload-samples", type=int, default=200, help="test images for payload statistics")
    p.add_argument("--accuracy-limit", type=int, default=None, help="test images for accuracy (default: all)")
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
    out.append(f"input: {inp.raw_bytes} B raw, {inp.compressed_bytes:.0f} B compressed; whole model "
               f"{profile.whole_model_ms.median:.3f} ms; backbone accuracy {acc}")
    return "\n".join(out)


def run(args) -> int:
    import time

    import torch

    from planner.errors import ProfileError
    from planner.pipeline import SplitPipeline
    from planner.profile.measure import ProfileSettings, profile_pipeline
    from planner.profile.quota import check_available
    from planner.profile.schema import Profile

    if args.device != "cpu" and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        raise ProfileError(f"device {args.device!r} is not available here (torch {torch.__version__}, "
                           f"CUDA available: {torch.cuda.is_available()})")
    if args.device != "cpu":
        raise ProfileError("CUDA profiling is not implemented yet: profile the cloud on its CPU (--device cpu)")
    if args.cpu_quota is not None:
        check_available()
    if (args.arch is None) == (args.model is None):
        raise ProfileError("give --model (a zoo model with its trained autoencoder) or --arch (an architecture "
                           "with random weights), exactly one")
    if args.arch:
        return run_arch(args)
    if ":" in args.model:
        raise ProfileError("profiling user models needs an autoencoder trained for them; use a zoo model")
    start = time.perf_counter()
    pipeline = SplitPipeline.from_zoo(args.model, None if args.autoencoder == "none" else args.autoencoder,
                                      weights=args.weights)
    settings = ProfileSettings(role=args.role, threads=args.threads, batch=args.batch, repeats=args.repeats,
                               max_seconds=args.max_seconds, device=args.device, cpu_quota=args.cpu_quota,
                               payload_samples=args.payload_samples, accuracy_limit=args.accuracy_limit,
                               float16=args.float16)
    onnx, on_edge, on_cloud = onnx_sides(pipeline, args)
    measured = profile_pipeline(pipeline, settings)
    if onnx is not None:
        from planner.profile.onnx import retime_profile

        measured = retime_profile(measured, onnx, settings, edge=on_edge, cloud=on_cloud)
    profile = Profile.from_dict(measured)
    out = Path(args.out) if args.out else ProfileKey.of(args.model, args.role, profile.device["threads"],
                                                         quota=args.cpu_quota, kind=args.autoencoder).path()
    if not args.out and onnx is not None:  # not a default profile: plans pick it only when given
        out = out.with_name(f"{out.stem}_onnxruntime.json")
    return write(profile, out, args.csv, start)


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
    from planner.onnx_runtime import runtime_pipeline

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
                            autoencoder=None if args.autoencoder == "none" else args.autoencoder,
                            input_format=args.input_format, images=args.images, float16=args.float16)
    profile = Profile.from_dict(profile_arch(args.arch, settings))
    key = ProfileKey.of(model_id(args.arch, tuple(profile.input.shape)), args.role, profile.device["threads"],
                        quota=args.cpu_quota, latent=args.latent)
    out = Path(args.out) if args.out else key.path(arch=True)
    print(f"{args.arch}: {len(profile.cuts)} cuts, the autoencoder serves "
          f"{sum(bool(c.bits) for c in profile.cuts)}; payloads from the latent-shape rule (latent {args.latent:g}, "
          f"no lossless stage); accuracy unknown (plan with --assume-loss)")
    return write(profile, out, args.csv, start)
