"""The cut finder on models users bring: every listed cut exact at batch > 1, tuple outputs, recurrent
states, integer inputs, leaf modules from the CLI and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import user_models as um

from planner import PartitionError, cuts, split

TESTS = Path(__file__).parent
MODELS = ["alexnet", "mobile_se", "inception", "vit", "conv_gru", "token_lstm"]


def _input(model, batch):
    if model.input_shape == (12,):
        return torch.randint(0, 50, (batch, 12))
    return torch.rand(batch, *model.input_shape)


def cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "planner", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("name", MODELS)
def test_every_cut_exact_at_batch_3(name):
    model = getattr(um, name)()
    example = torch.zeros(1, *model.input_shape, dtype=torch.long if name == "token_lstm" else torch.float32)
    found = cuts(model, example)
    assert len(found) > 3
    x = _input(model, 3)
    want = model(x)
    for c in found:
        head, tail = split(model, c.id, example)
        feature = head(x)
        assert tuple(feature.shape) == (3, *c.shape), c.id
        assert torch.allclose(tail(feature), want, atol=1e-5), c.id


def test_unused_tuple_output_and_recurrent_state():
    gru = cuts(um.conv_gru(), torch.zeros(1, 1, 28, 28))
    ids = [c.id for c in gru]
    assert any(c.shape == (14, 64) for c in gru)  # the GRU's output sequence is a cut...
    lstm = cuts(um.token_lstm(), torch.zeros(1, 12, dtype=torch.long))
    # ...but h_n / c_n of the LSTM, (layers, batch, hidden), are not: only batch-first tensors are cuts
    assert all(c.shape != (1, 32) for c in lstm), [(c.id, c.shape) for c in lstm]
    assert "getitem" in ids


def test_wrong_input_shape_is_one_clear_error():
    with pytest.raises(PartitionError, match=r"cannot run an input of shape 1x32x32.*--input-shape") as e:
        cuts(um.alexnet(), torch.zeros(1, 3, 32, 32)[:, :1])
    assert "\n" not in str(e.value)


def test_cli_cuts_user_models_leaf_modules_and_errors():
    out = cli("cuts", "--model", "user_models:token_lstm", "--input-shape", "12", "--input-dtype", "int64", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["input_dtype"] == "int64" and doc["cuts"][0]["dtype"] == "int64"

    bad = cli("cuts", "--model", "user_models:gated", "--input-shape", "1x28x28")
    assert bad.returncode == 2 and "--leaf-modules" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    good = cli("cuts", "--model", "user_models:gated", "--input-shape", "1x28x28",
               "--leaf-modules", "user_models:Gate", "--json")
    assert good.returncode == 0, good.stderr
    assert "gate" in [c["id"] for c in json.loads(good.stdout)["cuts"]]

    shape = cli("cuts", "--model", "user_models:alexnet", "--input-shape", "1x64x64")
    assert shape.returncode == 2 and "1x64x64" in shape.stderr and "Traceback" not in shape.stderr
    dtype = cli("cuts", "--model", "user_models:token_lstm", "--input-shape", "12")
    assert dtype.returncode == 2 and "--input-dtype" in dtype.stderr, dtype.stderr
