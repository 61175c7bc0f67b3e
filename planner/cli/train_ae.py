"""`planner train-ae --model NAME`: train the shared autoencoder (or the independent baseline) of a zoo model."""

from __future__ import annotations

from planner.config import DEFAULT_LATENT


def register(sub) -> None:
    p = sub.add_parser("train-ae", help="train the shared autoencoder (or --independent baseline) of a zoo model")
    p.add_argument("--model", required=True, help="zoo model name (vgg-fmnist, resnet-fmnist)")
    p.add_argument("--independent", action="store_true", help="train one autoencoder per cut (the baseline)")
    p.add_argument("--variant", default="slim", choices=["slim", "adapter"],
                   help="slim: one tensor sized for the widest cut, sliced per cut; adapter: per-cut 1x1 adapters")
    p.add_argument("--cuts", default=None, help="comma-separated cut ids to serve (default: every block output "
                                                "after an activation or pooling, see `planner cuts`)")
    p.add_argument("--bits", default="2,3,4,6,8", help="bitwidths to train for (1..8)")
    p.add_argument("--latent", type=float, default=DEFAULT_LATENT,
                   help="latent channels per cut: a count (>= 1) or a fraction of the cut's channels (< 1)")
    p.add_argument("--width", type=int, default=32, help="encoder trunk width")
    p.add_argument("--decoder-width", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the recipe's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--bits-per-step", type=int, default=None, help="sandwich size: lowest + highest + random")
    p.add_argument("--ce-weight", type=float, default=None, help="weight of the label cross-entropy (default 0.5)")
    p.add_argument("--recal-batches", type=int, default=None, help="batches for the BN recalibration (default 20)")
    p.add_argument("--val-limit", type=int, default=2000, help="validation images scored for the weights card")
    p.add_argument("--stop-after", type=int, default=None,
                   help="end this session after N steps (checkpointed); finish later with --resume")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N training images (smoke runs)")
    p.add_argument("--out", default=None, help="weights file (default: the package's compress/weights/ folder)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: runs/ae/<name>.ckpt)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import shlex
    import sys
    from dataclasses import replace

    from planner.compress.quantize import parse_bits
    from planner.compress.train import TrainConfig, train_zoo_autoencoder

    cfg = TrainConfig(seed=args.seed)
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                 "bits_per_step": args.bits_per_step, "ce_weight": args.ce_weight,
                 "recal_batches": args.recal_batches}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    kind = "independent" if args.independent else "shared"
    cut_ids = [c for c in args.cuts.split(",") if c] if args.cuts else None
    card = train_zoo_autoencoder(
        args.model, kind, variant=args.variant, latent=args.latent, width=args.width,
        decoder_width=args.decoder_width, bits=parse_bits(args.bits), cut_ids=cut_ids, cfg=cfg,
        threads=args.threads, out=args.out, checkpoint=args.checkpoint, resume=args.resume, limit=args.limit,
        progress=not args.no_progress, val_limit=args.val_limit, stop_after=args.stop_after,
        command="planner " + shlex.join(sys.argv[1:]))
    if "stopped_at" in card:
        print(f"stopped after step {card['stopped_at']}; checkpoint {card['checkpoint']} (continue with --resume)")
        return 0
    t = card["train"]
    accs = card["val_accuracy"].values()
    print(f"{card['id']}: {card['params']['total']} params, trained in {t['train_seconds'] / 60:.1f} min; "
          f"validation accuracy {min(accs):.2f}..{max(accs):.2f}% over {len(card['val_accuracy'])} (cut, bits) "
          f"pairs (backbone {card['val_backbone_accuracy']:.2f}%)")
    return 0
