"""`planner train-backbone NAME`: train a built-in backbone reproducibly and write its weights and card."""

from __future__ import annotations

from planner.cli import checks as check
from planner.devices import DEVICE_HELP


def register(sub) -> None:
    from planner import zoo

    p = sub.add_parser("train-backbone", help="train a zoo backbone (seeded) and save its weights")
    p.add_argument("name", choices=zoo.names())
    p.add_argument("--epochs", type=int, default=None, help="default: the zoo entry's recipe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out-dir", default=None, help="default: the package's zoo/weights folder")
    p.add_argument("--device", type=check.device, default="auto", help=DEVICE_HELP)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only (smoke runs)")
    p.set_defaults(func=run)


def run(args) -> int:
    from planner import zoo
    from planner.errors import ZooError
    from planner.zoo.train import train_backbone

    if zoo.default_data(args.name) != "fashion-mnist":
        raise ZooError(f"{args.name} uses pretrained ImageNet weights (the extra planner[imagenet]); "
                       "train-backbone trains the Fashion-MNIST models only")

    card = train_backbone(args.name, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                          threads=args.threads, out_dir=args.out_dir, limit=args.limit,
                          device=args.device)
    t = card["train"]
    print(f"{args.name}: test accuracy {card['test_accuracy']:.2f}% (val {card['val_accuracy']:.2f}%), "
          f"{card['params']} params, trained in {t['train_seconds'] / 60:.1f} min on {t['threads']} threads ({t['device']})")
    return 0
