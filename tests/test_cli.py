import json
import subprocess
import sys
import textwrap

import pytest

from planner.cli import main


def test_cuts_table(capsys):
    assert main(["cuts", "--model", "vgg-fmnist"]) == 0
    out = capsys.readouterr().out
    assert "pool1" in out and "16x14x14" in out and "head params" in out


def test_cuts_json_resnet_only_exact(capsys):
    assert main(["cuts", "--model", "resnet-fmnist", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ids = [c["id"] for c in data["cuts"]]
    assert ids[0] == "input" and ids[-1] == "output"
    assert not any("conv" in i or "bn" in i for i in ids)


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["cuts", "--model", "nope"]) == 2
    assert "unknown zoo model 'nope'" in capsys.readouterr().err


def test_user_model_factory(tmp_path, monkeypatch, capsys):
    (tmp_path / "mymodels.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        def tiny():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["cuts", "--model", "mymodels:tiny", "--input-shape", "3x8x8", "--json"]) == 0
    ids = [c["id"] for c in json.loads(capsys.readouterr().out)["cuts"]]
    assert ids == ["input", "_0", "_1", "_2", "output"]
    assert main(["cuts", "--model", "mymodels:tiny"]) == 2
    assert "input shape" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_evaluate():
    out = subprocess.run([sys.executable, "-m", "planner", "evaluate", "--model", "vgg-fmnist", "--limit", "500"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout
