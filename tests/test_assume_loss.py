"""Planning with unknown accuracy: `--assume-loss` parsing, its errors, and the assumption carried visibly."""

import json

import pytest

from planner.candidates import RAW_FLOAT16, check_assume_loss, parse_assume_loss
from planner.cli import main
from planner.errors import SolveError
from planner.link import ConstantLink
from planner.profile.synthetic import synthetic_pair
from planner.solve import solve


def test_parse_assume_loss():
    assert parse_assume_loss("8:0.1,4:0.5,2:2.0") == {2: 2.0, 4: 0.5, 8: 0.1}
    assert list(parse_assume_loss("8:0.1,2:2")) == [2, 8]  # sorted by bitwidth
    assert parse_assume_loss(" 3 : 1 , f16:0 ") == {3: 1.0, RAW_FLOAT16: 0.0}
    assert parse_assume_loss("float16:0.01,6:0") == {6: 0.0, RAW_FLOAT16: 0.01}


@pytest.mark.parametrize("text, message", [
    ("", "needs BITS:PP pairs"),
    ("   ", "needs BITS:PP pairs"),
    ("8", r"'8' is not BITS:PP"),
    ("8:0.1,,4:1", r"'' is not BITS:PP"),
    ("eight:0.1", r"'eight:0.1' is not BITS:PP"),
    ("-2:1", r"'-2:1' is not BITS:PP"),
    ("8:abc", r"'abc' for 8 bits is not a number"),
    ("8:", r"'' for 8 bits is not a number"),
    ("8:-0.5", r"8 bits must be a finite number of percentage points >= 0"),
    ("8:nan", r"8 bits must be a finite number"),
    ("8:inf", r"8 bits must be a finite number"),
    ("8:0.1,8:0.2", "8 bits is given twice"),
    ("f16:0,16:1", "16 bits is given twice"),
    ("9:1", "not a bitwidth"),
    ("0:1", "key 0 is not a bitwidth"),
    ("33:1", "key 33 is not a bitwidth"),
])
def test_parse_assume_loss_errors(text, message):
    with pytest.raises(SolveError, match=message):
        parse_assume_loss(text)


def test_check_assume_loss_rejects_bad_dicts():
    with pytest.raises(SolveError, match="must be a dict"):
        check_assume_loss([(8, 0.1)])
    with pytest.raises(SolveError, match="not a bitwidth"):
        check_assume_loss({"8": 0.1})
    with pytest.raises(SolveError, match="not a bitwidth"):
        check_assume_loss({True: 0.1})
    with pytest.raises(SolveError, match=">= 0"):
        check_assume_loss({8: -1})
    edge, cloud = synthetic_pair(1, n_cuts=2, bits=(2, 4), accuracy=False)
    with pytest.raises(SolveError, match="finite number"):
        solve(edge, cloud, ConstantLink("1mbit"), assume_loss={2: float("nan"), 4: 0.5, 16: 0.0})


def test_missing_assumption_says_what_is_missing():
    edge, cloud = synthetic_pair(2, n_cuts=3, bits=(2, 4), accuracy=False)
    with pytest.raises(SolveError, match=r"--assume-loss 8:0\.1.*no assumption for: 2, 4, float16 \(raw float16\)$"):
        solve(edge, cloud, ConstantLink("1mbit"))
    with pytest.raises(SolveError, match=r"no assumption for: 4, float16 \(raw float16\)$"):
        solve(edge, cloud, ConstantLink("1mbit"), assume_loss={2: 3.0})


def test_plan_carries_the_assumption():
    edge, cloud = synthetic_pair(2, n_cuts=3, bits=(2, 4), accuracy=False)
    plan = solve(edge, cloud, ConstantLink("300kbit", "20ms"), assume_loss={2: 3.0, 4: 0.5, 16: 0.0, 8: 0.1},
                 max_loss=None)
    d = plan.to_dict()
    assert d["assumed_loss"] == {"2": 3.0, "4": 0.5, "float16": 0.0}  # 8 bits was not profiled: no candidate uses it
    for c in d["candidates"]:
        assumed = c["kind"] == "split" or c["dtype"] == "float16"
        assert c["loss_assumed"] is assumed
        if c["kind"] == "split":
            assert c["accuracy_loss"] == {2: 3.0, 4: 0.5}[c["bits"]]
    table = plan.table
    assert list(table["loss_assumed"]) == [c["loss_assumed"] for c in d["candidates"]]
    assert plan.chosen.loss_assumed == ("(assumed)" in repr(plan))


def test_measured_accuracy_wins_over_an_assumption():
    edge, cloud = synthetic_pair(2, n_cuts=3, bits=(2, 4))
    plan = solve(edge, cloud, ConstantLink("300kbit", "20ms"), assume_loss={2: 50.0, 4: 50.0, 16: 50.0})
    assert plan.to_dict()["assumed_loss"] is None
    assert not any(c.loss_assumed for c in plan.candidates)
    assert max(c.accuracy_loss for c in plan.candidates) < 50.0


@pytest.fixture()
def unknown_pair(tmp_path):
    edge, cloud = synthetic_pair(3, n_cuts=3, bits=(2, 4, 8), accuracy=False, float16=False)
    return str(edge.save(tmp_path / "edge.json")), str(cloud.save(tmp_path / "cloud.json"))


def test_cli_plan_without_assumption_is_a_clear_error(unknown_pair, capsys):
    edge, cloud = unknown_pair
    assert main(["plan", "--edge", edge, "--cloud", cloud, "--bandwidth", "1mbit"]) == 2
    err = capsys.readouterr().err
    assert "accuracy is unknown" in err and "--assume-loss" in err and "no assumption for: 2, 4, 8" in err
    assert main(["plan", "--edge", edge, "--cloud", cloud, "--bandwidth", "1mbit", "--assume-loss", "8:x"]) == 2
    assert "'x' for 8 bits is not a number" in capsys.readouterr().err


def test_cli_plan_shows_the_assumption(unknown_pair, capsys):
    edge, cloud = unknown_pair
    args = ["plan", "--edge", edge, "--cloud", cloud, "--bandwidth", "200kbit", "--assume-loss", "8:0.1,4:0.5,2:2"]
    assert main(args + ["--top", "50"]) == 0
    out = capsys.readouterr().out
    assert "ASSUMED accuracy loss (not measured" in out and "2 bits 2 pp, 4 bits 0.5 pp, 8 bits 0.1 pp" in out
    split_rows = [line for line in out.splitlines() if " bits " in line and "@" in line]
    assert split_rows and all(line.split()[-2] == "assumed" for line in split_rows)
    assert main(args + ["--json", "--breakpoints"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["assumed_loss"] == {"2": 2.0, "4": 0.5, "8": 0.1}
    assert all(c["loss_assumed"] == (c["bits"] is not None) for c in d["candidates"])
    assert "breakpoints" in d
