"""`planner train-ae --model M [--data D] --out AE.pt`: train the shared autoencoder (or the independent
baseline) of any model, by distillation from the frozen model (labels, when the data has them, add CE)."""

from __future__ import annotations

import argparse

from planner.cli import checks as check
from planner.cli._model import add_data_args, add_model_args, data_from_args, model_from_args
from planner.config import DEFAULT_LATENT, DEFAULT_WIDTHS
from planner.types import AutoencoderKind


def register(sub) -> None:
    p = sub.add_parser("train-ae", help="train the shared autoencoder (or --independent baseline) of a model")
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--independent", action="store_true", help="train one autoencoder per cut (the baseline)")
    p.add_argument("--variant", default="slim", choices=["slim", "adapter", "residual"],
                   help="slim: one tensor sized for the widest cut, sliced per cut; adapter: per-cut 1x1 adapters; "
                        "residual: clamped latent + a linear decoder path, warm-started as a per-channel quantizer "
                        "(wide features whose every channel matters, e.g. ImageNet block outputs)")
    p.add_argument("--cuts", default=None, help="comma-separated cut ids to serve (default: every block output "
                                                "after an activation or pooling, see `planner cuts`)")
    p.add_argument("--bits", default="2,3,4,6,8", help="bitwidths to train for (1..8)")
    p.add_argument("--latent", type=check.positive_number, default=DEFAULT_LATENT,
                   help="widest latent width per cut: a channel count (>= 1) or a fraction (< 1) of the channels "
                        "entering the encoder")
    p.add_argument("--widths", default=",".join(map(str, DEFAULT_WIDTHS)),
                   help="latent widths served (comma-separated channel counts; each cut: those below its widest)")
    p.add_argument("--max-reduction", type=int, choices=[1, 2, 4], default=2,
                   help="largest r x r space-to-depth before the encoder (1: the latent keeps the feature's resolution)")
    count = check.int_at_least(1)
    p.add_argument("--width", type=count, default=32, help=argparse.SUPPRESS)
    p.add_argument("--decoder-width", type=count, default=48, help="decoder trunk width (runs in the cloud)")
    p.add_argument("--steps", type=count, default=None, help="optimizer steps (default: the recipe's)")
    p.add_argument("--batch-size", type=count, default=None,
                   help="training batch (default 128; smaller per cut where a step's activations would pass --memory-mb)")
    p.add_argument("--lr", type=check.positive_number, default=None)
    p.add_argument("--bits-per-step", type=count, default=None,
                   help="(width, bits) settings per step: smallest + largest + random")
    p.add_argument("--ce-weight", type=check.non_negative_number, default=None,
                   help="weight of the label cross-entropy (default 0.5)")
    p.add_argument("--recal-batches", type=count, default=None, help="batches for the BN recalibration (default 20)")
    p.add_argument("--val-limit", type=count, default=2000, help="validation images scored for the weights card")
    p.add_argument("--stop-after", type=count, default=None,
                   help="end this session after N steps (checkpointed); finish later with --resume")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=count, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--limit", type=count, default=None, help="train on the first N training images (smoke runs)")
    p.add_argument("--out", default=None, help="weights file (+ a .json card beside it); zoo models default to "
                                               "runs/ae/MODEL-KIND.pt")
    p.add_argument("--overwrite-shipped", action="store_true",
                   help="allow --out to replace the weights shipped in the package (planner/compress/weights/)")
    p.add_argument("--device", default="cpu", help="where to train: cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--feature-cache", default=None, metavar="DIR",
                   help="folder of the cached backbone features (default runs/featcache or $PLANNER_FEATURE_CACHE; "
                        "'none': run the backbone on every step)")
    p.add_argument("--cache-gb", type=check.positive_number, default=None,
                   help="most disk the cached features may take (default 4); beyond it a seeded subset of the "
                        "training images is cached and trained on")
    p.add_argument("--memory-mb", type=count, default=None,
                   help="activation memory of one step (default 2048): the batch shrinks at cuts that need more")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: runs/ae/<name>.ckpt)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import shlex
    import sys
    from dataclasses import replace

    from planner.compress.quantize import parse_bits
    from planner.compress.shipped import training_output
    from planner.compress.train import TrainConfig
    from planner.compress.trainjob import split_data, train_autoencoder, train_zoo_autoencoder
    from planner.zoo import names as zoo_names

    cfg = TrainConfig(seed=args.seed)
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                 "bits_per_step": args.bits_per_step, "ce_weight": args.ce_weight,
                 "recal_batches": args.recal_batches, "memory_mb": args.memory_mb}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    kind = AutoencoderKind.INDEPENDENT if args.independent else AutoencoderKind.SHARED
    cut_ids = [c for c in args.cuts.split(",") if c] if args.cuts else None
    is_zoo = args.model in zoo_names()
    out = training_output(args.model, kind, args.out, zoo=is_zoo, overwrite_shipped=args.overwrite_shipped)
    options = dict(variant=args.variant, latent=args.latent, max_reduction=args.max_reduction,
                   widths=_widths(args.widths), width=args.width, decoder_width=args.decoder_width,
                   bits=parse_bits(args.bits), cut_ids=cut_ids, cfg=cfg,
                   threads=args.threads, out=out, checkpoint=args.checkpoint, resume=args.resume,
                   progress=not args.no_progress, stop_after=args.stop_after,
                   command="planner " + shlex.join(sys.argv[1:]), overwrite_shipped=args.overwrite_shipped,
                   device=args.device, feature_cache=args.feature_cache,
                   cache_bytes=None if args.cache_gb is None else int(args.cache_gb * 2**30))
    loaded = model_from_args(args)
    from planner import zoo

    if loaded.zoo and not args.data and zoo.default_data(loaded.name) == "fashion-mnist":
        card = train_zoo_autoencoder(loaded.name, kind, limit=args.limit, val_limit=args.val_limit, **options)
    else:
        data = data_from_args(args, loaded, split="train").take(args.limit)
        card = train_autoencoder(loaded, split_data(data, loaded.preprocess, val_limit=args.val_limit,
                                                    seed=args.seed), kind, **options)
    if "stopped_at" in card:
        print(f"stopped after step {card['stopped_at']}; checkpoint {card['checkpoint']} (continue with --resume)")
        return 0
    t, metric = card["train"], card["metric"]
    accs = card[f"val_{metric}"].values()
    print(f"{card['id']}: {card['params']['total']} params, trained in {t['train_seconds'] / 60:.1f} min; "
          f"validation {metric} {min(accs):.2f}..{max(accs):.2f}% over {len(accs)} (cut, width, bits) settings "
          f"(backbone {card[f'val_backbone_{metric}']:.2f}%); served cuts {', '.join(card['served_cuts'])}; "
          f"wrote {out}")
    return 0


def _widths(text: str) -> tuple[int, ...]:
    from planner.errors import CompressError

    try:
        values = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise CompressError(f"--widths {text!r}: expected channel counts joined by commas, e.g. 4,8,16,32") from None
    if not values or min(values) < 1:
        raise CompressError(f"--widths {text!r}: give at least one positive channel count, e.g. 4,8,16,32")
    return values
