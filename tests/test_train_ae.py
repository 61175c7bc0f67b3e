import json
import random

import pytest
import torch
import user_models as um

from planner.compress.aeconfig import AEConfig
from planner.compress.aefile import load_autoencoder_file
from planner.compress.autoencoder import build_autoencoder
from planner.compress.backbone import Backbone, calibrate_scales, evaluate, recalibrate_bn
from planner.compress.train import TrainConfig, settings_sandwich, step_loss, train


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    backbone = Backbone(um.Toy(), torch.zeros(1, 1, 28, 28))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1, 28, 28, generator=gen).cumsum(3) / 5  # smooth-ish images
    y = backbone.features(x)[0].argmax(1)
    return backbone, x, y


def _fresh(backbone, x, kind="shared"):
    torch.manual_seed(0)
    config = AEConfig.for_cuts(backbone.cuts, latent=4, width=8, decoder_width=8, bits=(2, 4, 8))
    ae = build_autoencoder(config, kind)
    calibrate_scales(ae, backbone, x, count=256)
    return ae


def test_toy_cuts_served(toy):
    backbone, _, _ = toy
    assert [c.shape for c in backbone.cuts] == [(8, 28, 28), (8, 14, 14), (16, 14, 14), (16, 7, 7)]


def test_sandwich_rule_over_widths_and_bits():
    rng = random.Random(0)
    for _ in range(20):
        chosen = settings_sandwich((4, 8, 16), (2, 3, 4, 6, 8), 3, rng)
        assert chosen[0] == (4, 2) and chosen[-1] == (16, 8) and len(chosen) == 3
    assert settings_sandwich((4,), (2, 4, 8), 5, rng) == [(4, 2), (4, 4), (4, 8)]
    assert len(settings_sandwich((4, 8), (2, 4, 8), 1, rng)) == 1


@pytest.mark.parametrize("kind", ["shared", "independent"])
def test_short_training_lowers_the_loss(toy, kind):
    backbone, x, y = toy
    ae = _fresh(backbone, x, kind)
    cfg = TrainConfig(steps=40, batch_size=32, lr=5e-3, ce_weight=0.0, checkpoint_every=10**6)  # toy labels
    probe = x[:128], y[:128]

    def loss():
        torch.manual_seed(1)
        with torch.no_grad():
            return sum(float(step_loss(ae.train(), backbone, *probe, c, ((ae.widths(c)[0], 2), (ae.widths(c)[-1], 8)), cfg)) for c in ae.cuts)

    before = loss()
    train(ae, backbone, x, y, cfg, progress=False)
    after = loss()
    assert after < 0.7 * before, (before, after)


def test_resume_continues_exactly(toy, tmp_path):
    backbone, x, y = toy
    cfg = TrainConfig(steps=10, batch_size=16, checkpoint_every=100)
    straight = _fresh(backbone, x)
    train(straight, backbone, x, y, cfg, progress=False)
    resumed = _fresh(backbone, x)
    ckpt = tmp_path / "toy.ckpt"
    first = train(resumed, backbone, x, y, cfg, checkpoint=ckpt, progress=False, stop_after=4)
    assert first.steps_done == 4 and ckpt.exists()
    resumed = _fresh(backbone, x)  # a new process would start from scratch and load the checkpoint
    second = train(resumed, backbone, x, y, cfg, checkpoint=ckpt, resume=True, progress=False)
    assert second.steps_done == 10
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    with pytest.raises(Exception, match="made for 10 steps"):
        train(_fresh(backbone, x), backbone, x, y, TrainConfig(steps=20), checkpoint=ckpt, resume=True,
              progress=False)


def test_bn_recalibration_is_per_cut_and_bitwidth(toy):
    backbone, x, _ = toy
    ae = _fresh(backbone, x)
    feature = backbone.features(x[:8])[1][ae.cuts[0]]
    with torch.inference_mode():
        before = ae.eval().decode(ae.encode(feature, ae.cuts[0], 4), ae.cuts[0], 4)
    recalibrate_bn(ae, backbone, x, batches=3, batch_size=64)
    assert not ae.training
    for bn in ae.dec_bn:
        assert bn.num_batches.shape == (4, 3) and (bn.num_batches == 3).all()  # per cut and (width, bits)
        assert not torch.allclose(bn.running_mean[0, 0], bn.running_mean[0, 2])  # 2 bits != 8 bits statistics
    with torch.inference_mode():
        after = ae.decode(ae.encode(feature, ae.cuts[0], 4), ae.cuts[0], 4)
    assert not torch.allclose(before, after)


def test_evaluate_reports_backbone_and_every_pair(toy):
    backbone, x, y = toy
    ae = _fresh(backbone, x).eval()
    result = evaluate(ae, backbone, x[:100], y[:100], bits=[2, 8])
    assert result["backbone"] == 100.0  # labels are the backbone's own predictions
    assert set(result["rows"]) == {(c, w, b) for c in ae.cuts for w in ae.widths(c) for b in (2, 8)}


def test_cli_train_ae_smoke(tmp_path):
    from planner.cli import main
    from planner.data import DEFAULT_ROOT
    from planner.zoo import weights_path

    if not weights_path("resnet-fmnist").exists() or not DEFAULT_ROOT.exists():
        pytest.skip("needs the committed resnet-fmnist weights and Fashion-MNIST")
    out = tmp_path / "resnet-fmnist-shared.pt"
    rc = main(["train-ae", "--model", "resnet-fmnist", "--cuts", "relu_5,relu_7", "--bits", "2,8", "--steps", "3",
               "--widths", "8", "--limit", "300", "--recal-batches", "1", "--val-limit", "50", "--threads", "1", "--no-progress",
               "--out", str(out), "--checkpoint", str(tmp_path / "c.ckpt"), "--feature-cache", str(tmp_path / "fc")])
    assert rc == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["train"]["steps"] == 3 and set(card["val_accuracy"]) == {
        f"{c}@{b}w{w}" for c in ("relu_5", "relu_7") for w in (8, 32) for b in (2, 8)}
    ae = load_autoencoder_file(out)
    assert ae.id == card["id"] and ae.cuts == ["relu_5", "relu_7"] and ae.bits == (2, 8)
    assert card["entropy_models"] == len(ae.entropy) == 2 * 2 * 2  # per (cut, width, bits), in the file
    assert card["train"]["feature_cache"]["rows"] == 300


# -- the command's safety: bad counts refused before any work, shipped weights never replaced by default ------
def _cli(*argv, cwd):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "planner", "train-ae", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("flag", ["--steps=-5", "--steps=0", "--batch-size=0", "--limit=0", "--val-limit=0",
                                  "--recal-batches=-1", "--bits-per-step=0", "--lr=0", "--threads=0",
                                  "--decoder-width=0", "--latent=-1", "--stop-after=0"])
def test_train_ae_refuses_counts_and_sizes_below_one_before_any_work(flag, capsys):
    from planner.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train-ae", "--model", "resnet-fmnist", flag])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and flag.split("=")[0] in err


def test_train_config_checks_itself():
    from planner.rules import OptionError

    for bad in ({"steps": -5}, {"batch_size": 0}, {"lr": 0.0}, {"warmup": 2.0}, {"ce_weight": -1.0}):
        with pytest.raises(OptionError):
            TrainConfig(**bad)


def test_train_ae_refuses_the_shipped_file_unless_told(tmp_path):
    from planner.compress.shipped import training_output
    from planner.compress.zoo import weights_path
    from planner.errors import CompressError

    shipped = weights_path("resnet-fmnist", "shared")
    with pytest.raises(CompressError, match="shipped with planner.*--overwrite-shipped"):
        training_output("resnet-fmnist", "shared", shipped)
    assert training_output("resnet-fmnist", "shared", shipped, overwrite_shipped=True) == shipped
    assert training_output("resnet-fmnist", "shared").as_posix() == "runs/ae/resnet-fmnist-shared.pt"
    r = _cli("--model", "resnet-fmnist", "--out", str(shipped), "--steps", "1", cwd=tmp_path)
    assert r.returncode == 2 and "--overwrite-shipped" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.slow
def test_default_train_ae_run_leaves_the_shipped_weights_untouched(tmp_path):
    import hashlib

    from planner.compress.shipped import shipped_dir

    def digests():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(shipped_dir().iterdir())}

    before = digests()
    r = _cli("--model", "resnet-fmnist", "--steps", "2", "--batch-size", "8", "--limit", "64", "--val-limit", "16",
             "--recal-batches", "1", "--threads", "1", "--no-progress", "--cuts", "relu_5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert digests() == before
    assert (tmp_path / "runs" / "ae" / "resnet-fmnist-shared.pt").is_file()
    assert (tmp_path / "runs" / "ae" / "resnet-fmnist-shared.json").is_file()
