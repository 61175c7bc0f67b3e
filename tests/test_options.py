"""Options check themselves: the CLI flags and the Python keywords accept and refuse the same values, with the
same one-line message, before any model or network work."""

from __future__ import annotations

import math

import pytest

import planner
from planner.cli import build_parser, main
from planner.errors import PlannerError
from planner.profile.settings import ProfileSettings
from planner.rules import Number, OptionError, rule_of, show
from planner.runtime.options import EdgeOptions, ServerOptions

COMMANDS = ("run", "serve", "plan", "profile")


def _subparsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")  # noqa: SLF001
    return {name: sub.choices[name] for name in COMMANDS}


def _option_flags():
    """(command, flag, options class, field) of every flag whose type is an option's rule."""
    out = []
    for command, p in _subparsers().items():
        for action in p._actions:  # noqa: SLF001
            option = getattr(action.type, "option", None)
            if option is not None:
                out.append((command, action.option_strings[-1], *option))
    return out


def _numeric_flags():
    """(command, flag, type) of every flag that takes a number (its type is not str/None and it has no choices)."""
    out = []
    for command, p in _subparsers().items():
        for action in p._actions:  # noqa: SLF001
            if action.type in (None, str) or action.choices or not action.option_strings:
                continue
            name = getattr(action.type, "__name__", "")
            if name in ("readable_file", "writable_file", "check"):
                continue  # paths and parsed strings (bandwidths, durations): not numbers
            out.append((command, action.option_strings[-1], action.type))
    return out


def test_the_walk_covers_the_numeric_flags():
    flags = {(c, f) for c, f, *_ in _option_flags()}
    for needed in [("run", "--max-loss"), ("plan", "--max-loss"), ("run", "--timeout"), ("run", "--explore"),
                   ("run", "--edge-slowdown"), ("run", "--edge-cpu-quota"), ("serve", "--max-batch"),
                   ("serve", "--port"), ("serve", "--max-frame"), ("serve", "--compute-timeout"),
                   ("profile", "--repeats"), ("profile", "--max-seconds")]:
        assert needed in flags
    assert len(_numeric_flags()) >= len(flags)


@pytest.mark.parametrize(("command", "flag", "cls", "name"), _option_flags(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_option_flag_refuses_what_the_keyword_refuses_with_the_same_message(command, flag, cls, name, capsys):
    r = rule_of(cls, name)
    for bad in r.bad_values():
        with pytest.raises(OptionError) as python:
            cls(**{name: bad})
        text = "-1" if bad == -1 else show(bad) if not isinstance(bad, str) else bad
        with pytest.raises(SystemExit) as exit_:
            main([command, f"{flag}={text}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1, err
        assert str(python.value) in err, (err, str(python.value))


@pytest.mark.parametrize(("command", "flag", "kind"), _numeric_flags(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_numeric_flag_refuses_nonsense_in_one_line(command, flag, kind, capsys):
    for bad in ("nan", "-5", "x"):
        option = getattr(kind, "option", None)
        if option is not None and bad == "-5":
            r = rule_of(*option)
            if isinstance(r, Number) and r.accepts(-5.0):
                continue
        with pytest.raises(SystemExit) as exit_:
            main([command, f"{flag}={bad}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and flag in err, (bad, err)


def test_max_loss_minus_one_is_refused_the_same_everywhere(capsys, tmp_path):
    message = "max_loss must be a finite number >= 0 (percentage points) or None, got -1"
    for argv in (["plan", "--edge", "e.json", "--cloud", "c.json", "--bandwidth", "1mbit", "--max-loss", "-1"],
                 ["run", "--model", "vgg-fmnist", "--bandwidth", "1mbit", "--max-loss", "-1"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(PlannerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        planner.run([], model="no-such-model", max_loss=-1)  # refused before the model is looked up


def test_options_defaults_come_from_config_and_are_accepted():
    from planner import config

    assert EdgeOptions().max_loss == config.DEFAULT_MAX_LOSS and EdgeOptions().link == config.DEFAULT_LINK
    assert ServerOptions().max_reply == config.DEFAULT_MAX_REPLY and ServerOptions().port == config.DEFAULT_PORT
    assert ProfileSettings().repeats >= 1
    with pytest.raises(OptionError, match="backoff_max_s must be >= backoff_s"):
        EdgeOptions(backoff_s=5.0, backoff_max_s=1.0)
    with pytest.raises(OptionError, match="unknown edge option max_los:"):
        EdgeOptions().updated(max_los=1.0)
    with pytest.raises(PlannerError, match="not a candidate"):
        EdgeOptions(plan="relu_3@")
    assert EdgeOptions(plan="relu_3@4").plan.label == "relu_3 @ 4 bits"
    assert math.isinf(Number(0).bad_values()[-1])


def test_server_refuses_bad_options_before_serving():
    from planner.runtime.server import CloudServer

    class Handler:
        model = "m"

        def infer(self, payload):
            return None

    with pytest.raises(OptionError, match="max_batch must be an integer >= 1, got 0"):
        CloudServer(Handler(), max_batch=0)
    with pytest.raises(OptionError, match="compute_timeout must be"):
        CloudServer(Handler(), compute_timeout=math.inf)
    assert CloudServer(Handler(), port=0, workers=2).workers == 2
