import json
from pathlib import Path

import pytest
import torch

from planner import CompressError, load_autoencoder
from planner.compress.aeconfig import AEConfig, plan_cut
from planner.compress.aefile import load_autoencoder_file, save_autoencoder
from planner.compress.autoencoder import IndependentAutoencoders, SharedAutoencoder, build_autoencoder
from planner.compress.cutselect import select_cuts
from planner.config import DEFAULT_BITS
from planner.partition import cuts as list_cuts
from planner.zoo import build

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "results" / "rate_table.json"
EXPECTED = {
    "vgg-fmnist": ["block1_2", "block2_2", "pool1", "block3_2", "block4_2", "pool2", "block5_2", "block6_2", "pool3"],
    "resnet-fmnist": ["stem_2", "relu_1", "relu_3", "relu_5", "relu_7"],
}


@pytest.fixture(scope="module")
def zoo_cuts():
    return {name: list_cuts(build(name).eval(), torch.zeros(1, 1, 28, 28)) for name in EXPECTED}


@pytest.fixture(scope="module")
def resnet_config(zoo_cuts):
    return AEConfig.for_cuts(select_cuts(zoo_cuts["resnet-fmnist"]))


def test_default_cuts_are_block_outputs(zoo_cuts):
    for name, ids in EXPECTED.items():
        chosen = select_cuts(zoo_cuts[name])
        assert [c.id for c in chosen] == ids
        assert all(c.producer not in ("Conv2d", "BatchNorm2d", "add") for c in chosen)
    picked = select_cuts(zoo_cuts["resnet-fmnist"], ["add_1", "relu_5"])
    assert [c.id for c in picked] == ["add_1", "relu_5"]
    with pytest.raises(CompressError, match="not a cut of this model"):
        select_cuts(zoo_cuts["resnet-fmnist"], ["layer9"])
    with pytest.raises(CompressError, match="serves inner"):
        select_cuts(zoo_cuts["resnet-fmnist"], ["output"])


def test_plan_cut_reduction_and_latent_widths():
    assert plan_cut("a", (16, 28, 28)).reduction == 2
    assert plan_cut("a", (16, 28, 28)).latent_shape == (32, 14, 14)  # half of the 64 patch channels
    assert plan_cut("a", (16, 28, 28)).widths == (4, 8, 16, 32)
    assert plan_cut("a", (32, 14, 14)).latent_shape == (64, 7, 7)
    assert plan_cut("a", (32, 14, 14)).widths == (4, 8, 16, 32, 64)
    assert plan_cut("a", (64, 7, 7)).latent_shape == (32, 7, 7)
    assert plan_cut("a", (64, 3, 3)).latent_shape == (32, 3, 3)
    assert plan_cut("a", (64, 7, 7), latent=0.25).latent_channels == 16
    assert plan_cut("a", (64, 7, 7), latent=0.25).widths == (4, 8, 16)
    assert plan_cut("a", (4, 7, 7), latent=8).latent_channels == 4  # never wider than the feature
    assert plan_cut("a", (16, 28, 28), max_reduction=1).latent_shape == (8, 28, 28)
    assert plan_cut("a", (16, 28, 28), widths=(2, 6)).widths == (2, 6, 32)
    assert plan_cut("a", (16, 28, 28)).latent_shape_at(8) == (8, 14, 14)
    with pytest.raises(CompressError, match="serves latent widths 4, 8, 16, 32, not 5"):
        plan_cut("a", (16, 28, 28)).width(5)
    with pytest.raises(CompressError):
        plan_cut("a", (16, 28, 28), latent=0)
    assert plan_cut("a", (16, 28, 28), latent=8, max_reduction=4).latent_shape == (8, 7, 7)  # 4x4 patches
    with pytest.raises(CompressError, match="max_reduction must be 1, 2 or 4"):
        plan_cut("a", (16, 28, 28), max_reduction=8)


@pytest.mark.parametrize("kind", ["shared", "independent"])
@pytest.mark.parametrize("variant", ["slim", "adapter"])
def test_encode_decode_shapes_for_every_cut_and_bitwidth(resnet_config, kind, variant):
    config = AEConfig(**{**resnet_config.__dict__, "variant": variant})
    ae = build_autoencoder(config, kind).eval()
    for spec in config.cuts:
        x = torch.rand(3, *spec.shape)
        for width in ae.widths(spec.id):
            for bits in config.bits:
                with torch.inference_mode():
                    codes = ae.encode(x, spec.id, bits, width)
                    y = ae.decode(codes, spec.id, bits)
                assert codes.dtype == torch.uint8 and codes.shape == (3, *ae.latent_shape(spec.id, width))
                assert int(codes.max()) <= 2**bits - 1
                assert y.shape == x.shape and y.dtype == torch.float32 and (y >= 0).all()


def test_widths_are_nested_and_the_folded_encoder_matches_training(resnet_config):
    """A narrower width's codes are the leading channels of the widest; eval mode's folded conv = training path."""
    ae = SharedAutoencoder(resnet_config)
    with torch.no_grad():
        ae.gain.uniform_(0.5, 2.0)
        ae.bias.uniform_(-1.0, 1.0)
    x = torch.rand(2, 32, 14, 14)
    ae.train()
    with torch.no_grad():
        z_train = ae.latent(x, "relu_3")
    ae.eval()
    with torch.inference_mode():
        wide = ae.encode(x, "relu_3", 6)
        assert torch.allclose(ae.latent(x, "relu_3"), z_train, atol=1e-6)
        for w in ae.widths("relu_3")[:-1]:
            assert torch.equal(ae.encode(x, "relu_3", 6, w), wide[:, :w])


def test_odd_spatial_sizes_round_trip():
    spec = plan_cut("odd", (5, 13, 9), latent=0.5, min_side=3)
    ae = SharedAutoencoder(AEConfig([spec])).eval()
    codes = ae.encode(torch.rand(2, 5, 13, 9), "odd", 4)
    assert codes.shape == (2, 10, 7, 5)
    assert ae.decode(codes, "odd", 4).shape == (2, 5, 13, 9)


def _outputs(ae, config, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return {s.id: ae(torch.rand(2, *s.shape, generator=gen), s.id, 4) for s in config.cuts}


@pytest.mark.parametrize("tensor", ["entry", "from_latent", "dec1", "dec2", "exit"])
def test_sharing_is_real(resnet_config, tensor):
    """One parameter tensor serves every cut: perturbing it changes every cut's output."""
    ae = SharedAutoencoder(resnet_config).eval()
    before = _outputs(ae, resnet_config)
    with torch.no_grad():
        getattr(ae, tensor).add_(0.5 * torch.randn_like(getattr(ae, tensor)))
    after = _outputs(ae, resnet_config)
    assert all(not torch.allclose(before[c], after[c]) for c in before)


def test_independent_members_do_not_share(resnet_config):
    ae = IndependentAutoencoders(resnet_config).eval()
    before = _outputs(ae, resnet_config)
    with torch.no_grad():
        ae.member("relu_3").dec1.add_(1.0)
    after = _outputs(ae, resnet_config)
    assert not torch.allclose(before["relu_3"], after["relu_3"])
    assert all(torch.equal(before[c], after[c]) for c in before if c != "relu_3")


def test_every_shared_tensor_gets_gradient_from_every_cut(resnet_config):
    ae = SharedAutoencoder(resnet_config).train()
    for spec in resnet_config.cuts:
        ae.zero_grad(set_to_none=True)
        ae(torch.rand(4, *spec.shape), spec.id, 2).square().mean().backward()
        for name in ("entry", "from_latent", "dec1", "dec2", "exit"):
            assert getattr(ae, name).grad.abs().sum() > 0, (spec.id, name)


def test_unknown_cut_bits_and_bad_shapes_are_clear_errors(resnet_config):
    ae = SharedAutoencoder(resnet_config).eval()
    x = torch.rand(1, 16, 28, 28)
    with pytest.raises(CompressError, match="served cuts: stem_2, relu_1, relu_3, relu_5, relu_7"):
        ae.encode(x, "add", 4)
    with pytest.raises(CompressError, match="trained bitwidths: 2, 3, 4, 6, 8"):
        ae.encode(x, "stem_2", 5)
    with pytest.raises(CompressError, match="trained bitwidths"):
        ae.decode(torch.zeros(1, 8, 14, 14, dtype=torch.uint8), "stem_2", 7)
    with pytest.raises(CompressError, match=r"expects features of shape \(N, 32, 14, 14\)"):
        ae.encode(x, "relu_3", 4)
    with pytest.raises(CompressError, match=r"expects codes of shape \(N, W, 14, 14\) with W one of 4, 8, 16, 32"):
        ae.decode(torch.zeros(1, 8, 7, 7, dtype=torch.uint8), "stem_2", 4)
    with pytest.raises(CompressError, match=r"expects codes of shape"):
        ae.decode(torch.zeros(1, 5, 14, 14, dtype=torch.uint8), "stem_2", 4)
    with pytest.raises(CompressError, match="serves latent widths 4, 8, 16, 32, not 12"):
        ae.encode(x, "stem_2", 4, 12)
    with pytest.raises(CompressError, match="does not fit in 2 bits"):
        ae.decode(torch.full((1, 8, 14, 14), 7, dtype=torch.uint8), "stem_2", 2)


def test_parameter_accounting(resnet_config):
    shared = SharedAutoencoder(resnet_config)
    indep = IndependentAutoencoders(resnet_config)
    ps, pi = shared.param_counts(), indep.param_counts()
    assert ps["total"] == sum(p.numel() for p in shared.parameters())
    assert pi["total"] == sum(p.numel() for p in indep.parameters())
    assert ps["total"] == ps["shared_tensors"] + sum(ps["per_cut"].values())
    # per cut in the slim variant: the encoder's gain and bias (widest latent, 64) and 3 decoder BNs (width 48)
    wd, lmax = resnet_config.decoder_width, 64
    assert set(ps["per_cut"].values()) == {2 * lmax + 3 * 2 * wd}
    # decoder running statistics per cut and (width, bits): relu_3 has 5 widths, the others 4; 5 bitwidths
    assert ps["bn_running_stats"] == 3 * 2 * wd * 5 * (5 * 5)
    assert pi["total"] >= 4 * ps["total"]  # the paper's 4x holds on the ResNet cuts
    assert shared.encoder_params("relu_3") == 64 * (128 + 1)  # what the edge runs: one 1x1 conv
    adapter = SharedAutoencoder(AEConfig(**{**resnet_config.__dict__, "variant": "adapter"})).param_counts()
    assert adapter["per_cut"]["relu_3"] > adapter["per_cut"]["stem_2"] > 2 * lmax + 6 * wd  # adapters count per cut


def test_save_load_round_trip(tmp_path, resnet_config):
    for kind in ("shared", "independent"):
        ae = build_autoencoder(AEConfig(**{**resnet_config.__dict__, "extra": {"model": "toy"}}), kind).eval()
        path = tmp_path / f"toy-{kind}.pt"
        sha = save_autoencoder(ae, path, half=False)
        loaded = load_autoencoder_file(path)
        assert loaded.id == f"toy/{kind}@{sha[:8]}" and not loaded.training
        x = torch.rand(2, 32, 14, 14)
        with torch.inference_mode():
            assert torch.equal(ae.encode(x, "relu_3", 3), loaded.encode(x, "relu_3", 3))
            assert torch.equal(ae.encode(x, "relu_3", 3, 8), loaded.encode(x, "relu_3", 3, 8))
        assert loaded.cuts == ae.cuts and loaded.bits == ae.bits and loaded.widths("relu_3") == ae.widths("relu_3")


def test_missing_or_bad_weights(tmp_path):
    with pytest.raises(CompressError, match="planner train-ae --model nosuch --independent"):
        load_autoencoder("nosuch", "independent")
    with pytest.raises(CompressError, match="unknown autoencoder kind"):
        load_autoencoder("resnet-fmnist", "both")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CompressError, match="cannot load autoencoder"):
        load_autoencoder("x", path=bad)
    old = tmp_path / "old.pt"
    torch.save({"format": 1, "kind": "shared", "config": "{}", "state": {}}, old)
    with pytest.raises(CompressError, match="file format 1, this planner reads 2.*retrain"):
        load_autoencoder("x", path=old)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_weights_load_by_name(name):
    for kind in ("shared", "independent"):
        try:
            ae = load_autoencoder(name, kind)
        except CompressError:
            pytest.skip(f"no committed {kind} autoencoder for {name} yet")
        assert ae.id.startswith(f"{name}/{kind}@") and len(ae.id.rpartition("@")[2]) == 8
        assert ae.cuts == EXPECTED[name] and set(DEFAULT_BITS) <= set(ae.bits)  # the planner's default bits at least
        spec = ae.spec(ae.cuts[0])
        with torch.inference_mode():
            assert ae.decode(ae.encode(torch.rand(1, *spec.shape), spec.id, 4), spec.id, 4).shape[1:] == spec.shape


def test_committed_weights_reproduce_the_rate_table():
    """The committed shared autoencoder scores what the rate table says (full test set) on 2,000 images (+-2 pp)."""
    from planner.compress.backbone import Backbone, evaluate
    from planner.data import DEFAULT_ROOT, load_fashion_mnist
    from planner.zoo import load

    if not TABLE.exists() or not DEFAULT_ROOT.exists():
        pytest.skip("no rate table yet (python benchmarks/rate_table.py) or no Fashion-MNIST")
    entries = json.loads(TABLE.read_text())["models"]
    stale = [(e["model"], e["shared_id"]) for e in entries if load_autoencoder(e["model"]).id != e["shared_id"]]
    assert not stale, f"the rate table was made with other weights than the committed ones ({stale}): rerun it"
    entry = entries[0]
    ae = load_autoencoder(entry["model"])
    cut = ae.cuts[len(ae.cuts) // 2]
    model, _ = load(entry["model"])
    backbone = Backbone(model, torch.zeros(1, 1, 28, 28), [cut])
    x, y = load_fashion_mnist("test").tensors(2000)
    for width in (ae.widths(cut)[0], ae.widths(cut)[-1]):
        got = evaluate(ae, backbone, x, y, [cut], [4], widths=[width])["rows"][(cut, width, 4)]
        row = next(r for r in entry["rows"] if (r["method"], r["cut"], r["width"], r["bits"]) == ("shared", cut, width, 4))
        assert abs(got - row["accuracy"]) <= 2.0
