"""The residual autoencoder variant: warm-started as the training-free per-channel quantizer at every bitwidth,
a linear decoder path beside the conv trunk, one set of weights for every cut."""

import pytest
import torch

from planner.compress.aeconfig import AEConfig, plan_cut
from planner.compress.aefile import load_autoencoder_file, save_autoencoder
from planner.compress.autoencoder import build_autoencoder
from planner.compress.clipquant import RawQuantizer

BITS = (1, 2, 3, 4)


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    signed = torch.randn(64, 12, 10, 10, generator=g) * torch.linspace(0.2, 3.0, 12)[None, :, None, None]
    nonneg = torch.relu(torch.randn(64, 6, 14, 14, generator=g)) * 2.0
    return {"signed": signed, "nonneg": nonneg}


def _ae(kind="shared", max_reduction=1):
    feats = _features()
    specs = [plan_cut(c, tuple(f.shape[1:]), 4096, max_reduction, 5, ()) for c, f in feats.items()]
    ae = build_autoencoder(AEConfig(specs, bits=BITS, variant="residual", decoder_width=16, latent=4096,
                                    max_reduction=max_reduction, min_side=5, widths=()), kind)
    ae.calibrate(feats)
    return ae.eval(), feats


@pytest.mark.parametrize("kind", ["shared", "independent"])
def test_warm_start_is_the_raw_quantizer_at_every_bitwidth(kind):
    ae, feats = _ae(kind)
    for cut, x in feats.items():
        rq = RawQuantizer.calibrate({cut: x}, bits=BITS)
        for b in BITS:
            with torch.inference_mode():
                ours = ae.decode(ae.encode(x, cut, b), cut, b)
            theirs = rq.decode(rq.encode(x, cut, b), cut, b)
            assert torch.allclose(ours, theirs, atol=1e-4 * float(x.abs().max())), (cut, b)


def test_reduced_cut_warm_start_matches_per_channel_quantizer():
    ae, feats = _ae(max_reduction=2)
    x = feats["nonneg"]
    assert ae.spec("nonneg").reduction == 2
    rq = RawQuantizer.calibrate({"nonneg": x}, bits=BITS)
    with torch.inference_mode():
        ours = ae.decode(ae.encode(x, "nonneg", 2), "nonneg", 2)
    assert torch.allclose(ours, rq.decode(rq.encode(x, "nonneg", 2), "nonneg", 2), atol=1e-4 * float(x.max()))


def test_training_path_matches_deployment_and_moves_the_weights(tmp_path):
    ae, feats = _ae()
    x = feats["signed"]
    with torch.no_grad():
        fake = ae(x, "signed", 2)  # eval mode: the BN running statistics, straight-through rounding
    with torch.inference_mode():
        real = ae.decode(ae.encode(x, "signed", 2), "signed", 2)
    assert torch.allclose(fake, real, atol=1e-4)
    ae.train()
    opt = torch.optim.SGD(ae.parameters(), lr=1e-2)
    before = ae.exit.detach().clone()
    loss = torch.nn.functional.mse_loss(ae(x, "signed", 1), x)
    loss.backward()
    assert ae.bit_gain.grad is not None and ae.bit_gain.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(before, ae.exit.detach())
    ae.eval()
    with torch.no_grad():  # the file stores float16 weights (as train-ae rounds them before its BN recalibration)
        for t in ae.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    save_autoencoder(ae, tmp_path / "r.pt")
    back = load_autoencoder_file(tmp_path / "r.pt").eval()
    with torch.inference_mode():
        assert torch.equal(back.encode(x, "signed", 3), ae.encode(x, "signed", 3))
        assert torch.allclose(back.decode(ae.encode(x, "signed", 3), "signed", 3),
                              ae.decode(ae.encode(x, "signed", 3), "signed", 3))


def test_codes_stay_in_range_and_nonneg_features_stay_nonneg():
    ae, feats = _ae()
    with torch.inference_mode():
        for b in BITS:
            codes = ae.encode(feats["nonneg"] * 5, "nonneg", b)  # far outside the calibrated range: clamped
            assert codes.dtype == torch.uint8 and int(codes.max()) <= 2 ** b - 1
            assert float(ae.decode(codes, "nonneg", b).min()) >= 0.0
