"""`planner export --model M --out DIR`: the split's graphs as ONNX (edge: head + encoder + quantizer; cloud:
dequantize + decoder + tail; raw-feature heads/tails; the whole model) with a manifest the runtimes check."""

from __future__ import annotations

from planner.cli._model import add_model_args, model_from_args
from planner.types import AutoencoderKind


def register(sub) -> None:
    p = sub.add_parser("export", help="export the split's edge and cloud graphs to ONNX (for ONNX Runtime)")
    add_model_args(p)
    p.add_argument("--autoencoder", default=None, metavar="shared|independent|none|FILE",
                   help="the autoencoder whose encoder/decoder go into the graphs: a zoo model's committed "
                        "shared (default) or independent one, an autoencoder file, or none (raw graphs only; "
                        "the default for your own models)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the graphs and manifest.json")
    p.add_argument("--cuts", default="all", help="all inner cuts (default), 'served' (the autoencoder's) or C1,C2")
    p.add_argument("--bits", default=None, help="bitwidths to export, e.g. 2,4,8 (default: all trained)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    from planner.compress.quantize import parse_bits
    from planner.execution.onnx_export import DEFAULT_OPSET, export_pipeline
    from planner.execution.pipeline import SplitPipeline

    start = time.perf_counter()
    loaded = model_from_args(args)
    choice = args.autoencoder or (AutoencoderKind.SHARED if loaded.zoo else AutoencoderKind.NONE)
    pipeline = SplitPipeline.from_model(loaded, choice)
    cuts = args.cuts if args.cuts in ("all", "served") else [c for c in args.cuts.replace(" ", "").split(",") if c]
    spec = {"model": args.model, "weights": args.weights, "input_shape": list(loaded.input_shape),
            "autoencoder": args.autoencoder}
    manifest = export_pipeline(pipeline, args.out, cuts=cuts, bits=parse_bits(args.bits) if args.bits else None,
                               opset=args.opset or DEFAULT_OPSET, spec=spec, progress=args.progress)
    coded = sum(len(e.get("cloud", {})) for e in manifest["cuts"].values())
    print(f"planner export: {pipeline.name} -> {args.out}: {len(manifest['files'])} graphs, {len(manifest['cuts'])} "
          f"cuts ({coded} cut x bits codes graphs), opset {manifest['opset']}, in {time.perf_counter() - start:.0f} s")
    return 0
