import json
from pathlib import Path

import pytest
import torch

from planner import CompressError, load_autoencoder
from planner.compress.autoencoder import (
    AEConfig,
    IndependentAutoencoders,
    SharedAutoencoder,
    build_autoencoder,
    load_autoencoder_file,
    plan_cut,
    save_autoencoder,
    select_cuts,
)
from planner.partition import cuts as list_cuts
from planner.zoo import build

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "results" / "paper_table.json"
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


def test_plan_cut_reduction_and_latent_width():
    assert plan_cut("a", (16, 28, 28)).reduction == 4
    assert plan_cut("a", (16, 28, 28)).latent_shape == (8, 7, 7)
    assert plan_cut("a", (32, 14, 14)).latent_shape == (8, 7, 7)
    assert plan_cut("a", (64, 7, 7)).latent_shape == (8, 7, 7)
    assert plan_cut("a", (64, 3, 3)).latent_shape == (8, 3, 3)
    assert plan_cut("a", (64, 7, 7), latent=0.25).latent_channels == 16
    assert plan_cut("a", (4, 28, 28), latent=8).latent_channels == 4  # never wider than the feature
    assert plan_cut("a", (16, 28, 28), max_reduction=2).latent_shape == (8, 14, 14)
    with pytest.raises(CompressError):
        plan_cut("a", (16, 28, 28), latent=0)


@pytest.mark.parametrize("kind", ["shared", "independent"])
@pytest.mark.parametrize("variant", ["slim", "adapter"])
def test_encode_decode_shapes_for_every_cut_and_bitwidth(resnet_config, kind, variant):
    config = AEConfig(**{**resnet_config.__dict__, "variant": variant})
    ae = build_autoencoder(config, kind).eval()
    for spec in config.cuts:
        x = torch.rand(3, *spec.shape)
        for bits in config.bits:
            with torch.inference_mode():
                codes = ae.encode(x, spec.id, bits)
                y = ae.decode(codes, spec.id, bits)
            assert codes.dtype == torch.uint8 and codes.shape == (3, *ae.latent_shape(spec.id))
            assert int(codes.max()) <= 2**bits - 1
            assert y.shape == x.shape and y.dtype == torch.float32 and (y >= 0).all()


def test_odd_spatial_sizes_round_trip():
    spec = plan_cut("odd", (5, 13, 9), latent=0.5, min_side=3)
    ae = SharedAutoencoder(AEConfig([spec])).eval()
    codes = ae.encode(torch.rand(2, 5, 13, 9), "odd", 4)
    assert codes.shape == (2, 2, 7, 5)
    assert ae.decode(codes, "odd", 4).shape == (2, 5, 13, 9)


def _outputs(ae, config, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return {s.id: ae(torch.rand(2, *s.shape, generator=gen), s.id, 4) for s in config.cuts}


@pytest.mark.parametrize("tensor", ["entry", "enc1", "to_latent", "dec2", "exit"])
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
        ae.member("relu_3").enc1.add_(1.0)
    after = _outputs(ae, resnet_config)
    assert not torch.allclose(before["relu_3"], after["relu_3"])
    assert all(torch.equal(before[c], after[c]) for c in before if c != "relu_3")


def test_every_shared_tensor_gets_gradient_from_every_cut(resnet_config):
    ae = SharedAutoencoder(resnet_config).train()
    for spec in resnet_config.cuts:
        ae.zero_grad(set_to_none=True)
        ae(torch.rand(4, *spec.shape), spec.id, 2).square().mean().backward()
        for name in ("entry", "enc1", "enc2", "to_latent", "from_latent", "dec1", "dec2", "exit"):
            assert getattr(ae, name).grad.abs().sum() > 0, (spec.id, name)


def test_unknown_cut_bits_and_bad_shapes_are_clear_errors(resnet_config):
    ae = SharedAutoencoder(resnet_config).eval()
    x = torch.rand(1, 16, 28, 28)
    with pytest.raises(CompressError, match="served cuts: stem_2, relu_1, relu_3, relu_5, relu_7"):
        ae.encode(x, "add", 4)
    with pytest.raises(CompressError, match="trained bitwidths: 2, 3, 4, 6, 8"):
        ae.encode(x, "stem_2", 5)
    with pytest.raises(CompressError, match="trained bitwidths"):
        ae.decode(torch.zeros(1, 8, 7, 7, dtype=torch.uint8), "stem_2", 7)
    with pytest.raises(CompressError, match=r"expects features of shape \(N, 32, 14, 14\)"):
        ae.encode(x, "relu_3", 4)
    with pytest.raises(CompressError, match=r"expects codes of shape \(N, 8, 7, 7\)"):
        ae.decode(torch.zeros(1, 8, 14, 14, dtype=torch.uint8), "stem_2", 4)
    with pytest.raises(CompressError, match="does not fit in 2 bits"):
        ae.decode(torch.full((1, 8, 7, 7), 7, dtype=torch.uint8), "stem_2", 2)


def test_parameter_accounting(resnet_config):
    shared = SharedAutoencoder(resnet_config)
    indep = IndependentAutoencoders(resnet_config)
    ps, pi = shared.param_counts(), indep.param_counts()
    assert ps["total"] == sum(p.numel() for p in shared.parameters())
    assert pi["total"] == sum(p.numel() for p in indep.parameters())
    assert ps["total"] == ps["shared_tensors"] + sum(ps["per_cut"].values())
    # per cut in the slim variant: BN affine only (3 encoder + 3 decoder BNs of width 32, weight and bias)
    assert set(ps["per_cut"].values()) == {6 * 2 * 32}
    assert ps["bn_running_stats"] == 3 * 2 * 32 * 5 + 3 * 2 * 32 * 5 * 5  # encoder per cut, decoder per cut & bits
    assert pi["total"] >= 4 * ps["total"]  # the paper's 4x holds by construction on the ResNet cuts
    adapter = SharedAutoencoder(AEConfig(**{**resnet_config.__dict__, "variant": "adapter"})).param_counts()
    assert adapter["per_cut"]["relu_3"] > adapter["per_cut"]["stem_2"] > 6 * 2 * 32  # adapters count per cut


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
        assert loaded.cuts == ae.cuts and loaded.bits == ae.bits


def test_missing_or_bad_weights(tmp_path):
    with pytest.raises(CompressError, match="planner train-ae --model nosuch --independent"):
        load_autoencoder("nosuch", "independent")
    with pytest.raises(CompressError, match="unknown autoencoder kind"):
        load_autoencoder("resnet-fmnist", "both")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CompressError, match="cannot load autoencoder"):
        load_autoencoder("x", path=bad)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_weights_load_by_name(name):
    for kind in ("shared", "independent"):
        try:
            ae = load_autoencoder(name, kind)
        except CompressError:
            pytest.skip(f"no committed {kind} autoencoder for {name} yet")
        assert ae.id.startswith(f"{name}/{kind}@") and len(ae.id.rpartition("@")[2]) == 8
        assert ae.cuts == EXPECTED[name] and ae.bits == (2, 3, 4, 6, 8)
        spec = ae.spec(ae.cuts[0])
        with torch.inference_mode():
            assert ae.decode(ae.encode(torch.rand(1, *spec.shape), spec.id, 4), spec.id, 4).shape[1:] == spec.shape


def test_committed_weights_reproduce_the_table():
    """The committed shared autoencoder scores what the paper table says on its 2,000-image check (+-1 pp)."""
    from planner.compress.train import Backbone, evaluate
    from planner.data import DEFAULT_ROOT, load_fashion_mnist
    from planner.zoo import load

    if not TABLE.exists() or not DEFAULT_ROOT.exists():
        pytest.skip("no paper table yet (python benchmarks/paper_table.py) or no Fashion-MNIST")
    entry = json.loads(TABLE.read_text())["models"][0]
    check = entry["subset_check"]
    model, _ = load(entry["model"])
    backbone = Backbone(model, torch.zeros(1, 1, 28, 28), [check["cut"]])
    ae = load_autoencoder(entry["model"])
    x, y = load_fashion_mnist("test").tensors(check["images"])
    got = evaluate(ae, backbone, x, y, [check["cut"]], [check["bits"]])
    assert abs(got["rows"][(check["cut"], check["bits"])] - check["shared_accuracy"]) <= 1.0
    full = next(r for r in entry["rows"] if (r["cut"], r["bits"]) == (check["cut"], check["bits"]))
    assert abs(got["rows"][(check["cut"], check["bits"])] - full["shared_accuracy"]) <= 2.0  # subset vs full set
