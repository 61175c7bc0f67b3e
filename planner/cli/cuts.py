"""`planner cuts --model NAME [--json]`: the valid cuts of a model, as a table or JSON."""

from __future__ import annotations

import json

from planner.cli._model import add_model_args, model_from_args


def register(sub) -> None:
    p = sub.add_parser("cuts", help="list the valid cuts of a model (exact head/tail splits)")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def format_table(cuts) -> str:
    rows = [("#", "id", "scope", "after", "shape", "float32 KB", "head params")]
    rows += [(str(c.index), c.id, c.scope or "-", c.producer, "x".join(map(str, c.shape)),
              f"{c.float32_bytes / 1024:.1f}", f"{c.head_params:,}") for c in cuts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {0, 5, 6}
    lines = ["  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args) -> int:
    from planner.partition import cuts

    m = model_from_args(args, trained=False)
    found = cuts(m.model, m.example(), m.leaf_modules)
    if args.json:
        print(json.dumps({"model": m.name, "input_shape": list(m.input_shape),
                          "input_dtype": str(m.input_dtype).replace("torch.", ""),
                          "cuts": [c.to_dict() for c in found]}, indent=2))
    else:
        print(f"{m.name}: {len(found)} cuts ({len(found) - 2} inner + input/output), input "
              f"{'x'.join(map(str, m.input_shape))}")
        print(format_table(found))
    return 0
