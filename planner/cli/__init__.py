"""The `planner` command line. Each sub-command lives in its own module with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys

from planner.errors import PlannerError

# Sub-command modules, in the order of the data flow (partition -> compress -> profile -> solve -> run).
COMMANDS = [
    "cuts",
    "evaluate",
    "train_backbone",
    "train_ae",
    "calibrate_quant",
    "export",
    "profile",
    "plan",
    "report",
    "serve",
    "run",
    "demo",
]


class _Parser(argparse.ArgumentParser):
    """A bad flag is one line and exit code 2 (the usage is one `--help` away); sub-commands inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="planner",
        description="Plan and run split DNN inference between an edge device and a cloud server.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"planner.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from planner.cli.checks import join_negative_values

    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    try:
        return int(args.func(args) or 0)
    except PlannerError as exc:
        print(f"planner {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
