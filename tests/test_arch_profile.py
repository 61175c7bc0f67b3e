"""Architecture-only profiles: random weights timed on this device, payloads from the latent-shape rule."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from planner import images
from planner.cli import main
from planner.compress import codec
from planner.compress.aeconfig import AEConfig, plan_cut
from planner.compress.autoencoder import SharedAutoencoder
from planner.compress.cutselect import select_cuts
from planner.compress.zoo import load_autoencoder, weights_path
from planner.errors import ProfileError
from planner.partition import Partitioner
from planner.profile.arch import (
    ARCH_LATENT,
    ArchSettings,
    latent_shape,
    model_id,
    payload_bytes,
    profile_arch,
)
from planner.profile.schema import Profile
from planner.profile.store import ProfileKey
from planner.zoo import arch

SMALL = (3, 32, 32)
FAST = dict(threads=1, input_shape=SMALL, repeats=1, max_seconds=0.0, warmup=0, bits=(2, 8))


@pytest.fixture(scope="module")
def small() -> Profile:
    """ResNet-18 at 32x32, both roles: a whole architecture profile in a few seconds."""
    return Profile.from_dict(profile_arch("resnet18", ArchSettings(role="both", **FAST), progress=False))


def test_small_architecture_profile(small):
    model, _ = arch.build("resnet18")
    inner = [c for c in Partitioner(model, torch.zeros(1, *SMALL), verify=False).cuts if not c.trivial]
    assert [c.id for c in small.cuts] == [c.id for c in inner]
    assert [c.shape for c in small.cuts] == [c.shape for c in inner]
    served = {c.id for c in select_cuts(inner)}
    assert {c.id for c in small.cuts if c.bits} == served and 0 < len(served) < len(inner)
    assert small.model == "resnet18@3x32x32" and small.autoencoder.startswith("rule:shared/latent=8/")
    assert small.backbone_accuracy is None and small.bits == (2, 8)
    assert all(e.accuracy is None for c in small.cuts for e in c.bits.values())
    for c in small.cuts:
        assert c.head_ms.median > 0 and c.tail_ms.median > 0
        assert c.raw["float32"].bytes == codec.payload_size((1, *c.shape), None, c.id, mode="float32")
        for b, e in c.bits.items():
            assert e.bytes_mean == e.bytes_p95 == payload_bytes(c.id, c.shape, b)
            assert e.encode_ms.median > 0 and e.decode_ms.median > 0
        if c.bits:
            assert c.bits[8].bytes_mean > c.bits[2].bytes_mean
    assert small.input.compressed_bytes == images.input_bytes(SMALL)["median"]["jpeg_q90"]
    assert small.input.raw_bytes == math.prod(SMALL) and small.input.encode_ms and small.input.decode_ms
    assert small.reply_bytes == codec.payload_size((1, 1000), None, "output", mode="float32")
    s = small.settings
    assert s["input_format"] == "jpeg_q90" and s["photos"] == ["grace_hopper.jpg"] and s["weights"] == "random"
    assert s["latent"] == 8 and "no lossless stage" in s["payload_rule"] and s["threads"] == 1
    assert "no lossless stage assumed" in small.notes and "accuracy unknown" in small.notes


def test_rule_matches_the_untrained_autoencoder_it_times(small):
    """The bytes in the profile are exactly what the timed autoencoder's codes frame to (no lossless stage)."""
    model, _ = arch.build("resnet18")
    x = torch.rand(1, *SMALL)
    part = Partitioner(model, x, verify=False)
    served = select_cuts(part.cuts)
    ae = SharedAutoencoder(AEConfig.for_cuts(served, latent=ARCH_LATENT, max_reduction=4, bits=(2, 8))).eval()
    with torch.inference_mode():
        for c in served:
            feature = part.split(c.id)[0](x)
            for b in (2, 8):
                codes = ae.encode(feature, c.id, b).numpy()
                assert len(codec.encode(codes, c.id, b, lossless="none")) == small.cut(c.id).bits[b].bytes_mean


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_committed_profile_payloads_are_the_codecs_bytes(name):
    """The payloads in the committed 224x224 profiles (profiles/arch/) are what an untrained shared autoencoder
    over the same cuts frames its codes to: exactly without a lossless stage, never more with the codec's
    default. Payload size depends only on the latent shape, the bits and the cut id (header), not on the
    weights or the feature, so random ones suffice; one cut per latent shape is encoded to keep this cheap."""
    from planner.report import find_profiles

    profile = Profile.load(find_profiles(name, dirs=[Path(__file__).resolve().parents[1] / "profiles" / "arch"])[0])
    s = profile.settings
    rule = (s["latent"], s["max_reduction"], s["min_side"])
    served = [c for c in profile.cuts if c.bits]
    ae = SharedAutoencoder(AEConfig.for_cuts([(c.id, c.shape) for c in served], *rule, bits=profile.bits)).eval()
    one_per_latent = {}
    for c in served:
        assert ae.latent_shape(c.id) == latent_shape(c.id, c.shape, *rule)
        for b, e in c.bits.items():
            assert e.bytes_mean == e.bytes_p95 == payload_bytes(c.id, c.shape, b, *rule)
        cheapest = one_per_latent.setdefault(ae.latent_shape(c.id), c)
        if math.prod(c.shape) < math.prod(cheapest.shape):
            one_per_latent[ae.latent_shape(c.id)] = c
    assert len(one_per_latent) >= 2
    torch.manual_seed(0)
    with torch.inference_mode():
        for c in one_per_latent.values():
            feature = torch.rand(1, *c.shape)
            for b in profile.bits:
                codes = ae.encode(feature, c.id, b).numpy()
                assert len(codec.encode(codes, c.id, b, lossless="none")) == c.bits[b].bytes_mean, (c.id, b)
                assert codec.header_size(c.id, 4) < len(codec.encode(codes, c.id, b)) <= c.bits[b].bytes_mean


def test_latent_width_and_roles(tmp_path):
    edge = Profile.from_dict(profile_arch("resnet18", ArchSettings(role="edge", latent=0.25, **FAST),
                                          progress=False))
    assert edge.settings["latent"] == 0.25 and "latent=0.25" in edge.autoencoder
    for c in edge.cuts:
        assert c.head_ms is not None and c.tail_ms is None and c.raw["float32"].deserialize_ms is None
        for b, e in c.bits.items():
            lat = latent_shape(c.id, c.shape, 0.25)
            assert lat[0] == max(1, round(0.25 * plan_cut(c.id, c.shape, 0.25, 4).entry_channels))
            assert e.bytes_mean == codec.header_size(c.id, 4) + math.ceil(math.prod(lat) * b / 8)
            assert e.encode_ms is not None and e.decode_ms is None
    assert edge.input.decode_ms is None and edge.input.encode_ms is not None
    path = ProfileKey.of(model_id("resnet50", arch.IMAGENET_SHAPE), "edge", 1).path(arch=True)
    assert path.parent.as_posix() == "profiles/arch" and path.name.startswith("resnet50_edge_")
    assert path.name.endswith("-1t.json")
    small = ProfileKey.of(model_id("resnet18", SMALL), "cloud", 2, latent=0.125).filename
    assert small.startswith("resnet18_3x32x32_cloud_") and small.endswith("-2t-L0.125.json")


@pytest.mark.parametrize("settings, message", [
    (dict(role="server"), "role must be one of"),
    (dict(latent=0), "latent width must be"),
    (dict(input_format="webp"), "input format must be one of"),
    (dict(input_shape=(3, 32)), r"input shape must be \(C, H, W\)"),
    (dict(bits=(9,)), "bit"),
])
def test_bad_settings(settings, message):
    with pytest.raises(Exception, match=message):
        profile_arch("resnet18", ArchSettings(**{**FAST, **settings}), progress=False)


def test_cli_arch_profile_then_plan_with_assumed_loss(tmp_path, capsys):
    common = ["--arch", "resnet18", "--input", "3x32x32", "--repeats", "1", "--max-seconds", "0", "--bits", "2,4,8",
              "--threads", "1"]
    edge, cloud = str(tmp_path / "e.json"), str(tmp_path / "c.json")
    assert main(["profile", *common, "--role", "edge", "--out", edge]) == 0
    out = capsys.readouterr().out
    assert "resnet18: 22 cuts, the autoencoder serves" in out and "--assume-loss" in out
    assert "backbone accuracy unknown" in out
    assert main(["profile", *common, "--role", "cloud", "--out", cloud]) == 0
    capsys.readouterr()
    plan = ["plan", "--edge", edge, "--cloud", cloud, "--bandwidth", "300kbit", "--edge-slowdown", "30"]
    assert main(plan) == 2
    assert "--assume-loss" in capsys.readouterr().err
    assert main(plan + ["--assume-loss", "8:0.1,4:0.5,2:2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["assumed_loss"] == {"2": 2.0, "4": 0.5, "8": 0.1}
    splits = [c for c in d["candidates"] if c["kind"] == "split"]
    assert splits and all(c["loss_assumed"] and c["accuracy_loss"] == {2: 2.0, 4: 0.5, 8: 0.1}[c["bits"]]
                          for c in splits)
    assert not any(c["feasible"] for c in splits if c["bits"] == 2)  # 2 bits: over the 1 pp budget
    fastest = min((c for c in d["candidates"] if c["feasible"]), key=lambda c: c["predicted_ms"])
    assert (d["kind"], d["cut"], d["bits"]) == (fastest["kind"], fastest["cut"], fastest["bits"])
    # (with timings from one repeat, split vs cloud-only is within noise here: the plan is the fastest either way)


def test_cli_arch_errors(capsys):
    assert main(["profile", "--arch", "resnet18", "--model", "vgg-fmnist"]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["profile"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["profile", "--arch", "resnet7"]) == 2
    assert "unknown architecture 'resnet7'" in capsys.readouterr().err
    assert main(["profile", "--arch", "resnet18", "--bits", "2,four"]) == 2
    assert "--bits takes comma-separated integers" in capsys.readouterr().err


def _fmnist_features(model, part, cut_ids, n):
    from planner.data import load_arrays, normalize

    x = normalize(load_arrays("test")[0][:n])
    with torch.inference_mode():
        return {cid: part.split(cid)[0](x) for cid in cut_ids}


@pytest.mark.parametrize("name", ["vgg-fmnist", "resnet-fmnist"])
@pytest.mark.parametrize("trained", [False, True], ids=["untrained-ae", "trained-ae"])
def test_payload_rule_vs_the_codec_on_real_features(name, trained):
    """The rule an architecture profile uses, applied to a Fashion-MNIST model's cut shapes, gives the bytes the
    real codec frames the autoencoder's codes to (exactly without a lossless stage; the codec's default, which
    keeps zlib only when it is smaller, never sends more)."""
    from planner import zoo

    if trained:
        if not weights_path(name).exists():
            pytest.skip(f"the trained shared autoencoder {weights_path(name)} is not there yet")
        model, _ = zoo.load(name)
        ae = load_autoencoder(name)
    else:
        model = zoo.build(name).eval()
    part = Partitioner(model, torch.zeros(1, *zoo.info(name).input_shape), verify=False)
    if not trained:
        ae = SharedAutoencoder(AEConfig.for_cuts(select_cuts(part.cuts))).eval()
    cfg = ae.config
    by_id = {c.id: c for c in part.cuts}
    feats = _fmnist_features(model, part, ae.cuts, n=32)
    with torch.inference_mode():
        for cid in ae.cuts:
            shape = by_id[cid].shape
            assert latent_shape(cid, shape, cfg.latent, cfg.max_reduction, cfg.min_side) == ae.latent_shape(cid)
            assert plan_cut(cid, shape, cfg.latent, cfg.max_reduction, cfg.min_side).reduction == ae.spec(cid).reduction
            header = codec.header_size(cid, 4)
            for b in ae.bits:
                rule = payload_bytes(cid, shape, b, cfg.latent, cfg.max_reduction, cfg.min_side)
                codes = ae.encode(feats[cid], cid, b).numpy()
                plain = [len(codec.encode(codes[i:i + 1], cid, b, lossless="none")) for i in range(len(codes))]
                sent = [len(codec.encode(codes[i:i + 1], cid, b)) for i in range(len(codes))]
                assert plain == [rule] * len(codes)
                assert max(sent) <= rule
                assert rule - header == math.ceil(math.prod(ae.latent_shape(cid)) * b / 8)
                assert np.all(np.asarray(sent) >= header)


def test_arch_needs_cpu_and_known_format():
    with pytest.raises(ProfileError, match="run on the CPU"):
        ArchSettings(device="cuda:0").check()
