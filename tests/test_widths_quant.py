"""Issue 15's knobs through the stack: latent widths and the training-free raw quantizer in profiles (schema 3),
the solver, the plan, the pipeline and the codec."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from planner import CompressError, PlannerError, ProfileError, SolveError
from planner.compress import codec
from planner.compress.aeconfig import AEConfig, plan_cut
from planner.compress.autoencoder import SharedAutoencoder
from planner.compress.clipquant import RawQuantizer
from planner.link import ConstantLink
from planner.profile.schema import Profile, check_compatible
from planner.profile.synthetic import synthetic_pair
from planner.solve import CandidateSet, solve
from planner.types import CandidateKind, CandidateSpec


def _with_knobs(p: Profile) -> Profile:
    """A synthetic profile with two narrower widths (fewer bytes, more loss) and raw-quantizer entries per cut."""
    cuts = []
    for c in p.cuts:
        narrow = {w: {b: replace(e, bytes_mean=e.bytes_mean * w / 32, bytes_p95=e.bytes_p95 * w / 32,
                                  accuracy=None if e.accuracy is None else e.accuracy - (32 / w) * 0.3)
                      for b, e in c.bits.items()} for w in (4, 8)}
        quant = {b: replace(e, bytes_mean=e.bytes_mean * 6, bytes_p95=e.bytes_p95 * 6) for b, e in c.bits.items()}
        cuts.append(replace(c, widest=32, widths=narrow, quant=quant))
    return replace(p, cuts=tuple(cuts), widths=(4, 8, 32), quantizer="synthetic/quant@00000000",
                   quant_bits=p.bits)


@pytest.fixture(scope="module")
def knobs():
    edge, cloud = synthetic_pair(3)
    return _with_knobs(edge), _with_knobs(cloud)


def test_schema_3_round_trips_widths_and_quant(knobs, tmp_path):
    edge, _ = knobs
    back = Profile.load(edge.save(tmp_path / "e.json"))
    assert back.widths == (4, 8, 32) and back.quantizer == edge.quantizer and back.quant_bits == edge.bits
    c = back.cuts[2]
    assert c.widest == 32 and set(c.widths) == {4, 8} and set(c.quant) == set(edge.bits)
    assert c.widths[4][2] == edge.cuts[2].widths[4][2]
    assert [(w, b) for w, b, _ in c.settings()][:2] == [(None, 2), (None, 3)]
    frame = back.bits_frame()
    assert set(frame["method"]) == {"shared", "quant"} and set(frame["width"].dropna()) == {4, 8, 32}


def test_schema_2_files_load_with_one_width(knobs, tmp_path):
    edge, _ = knobs
    d = edge.to_dict()
    d["schema_version"] = 2
    for k in ("widths", "quantizer", "quant_bits"):
        del d[k]
    for c in d["cuts"]:
        for k in ("widest", "widths", "quant"):
            del c[k]
    old = Profile.from_dict(d, "old.json")
    assert old.widths == () and old.quantizer is None and all(not c.widths and not c.quant for c in old.cuts)


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["cuts"][0]["widths"].update({"16": {}}), r"cuts\[0\].widths.16: not one of the profile's widths"),
    (lambda d: d["cuts"][0]["widths"].update({"64": {}}), r"widths.64"),
    (lambda d: d["cuts"][0]["quant"].update({"5": d["cuts"][0]["quant"]["2"]}), r"cuts\[0\].quant.5: not one"),
    (lambda d: d.update(widths=[4, 4]), "distinct"),
])
def test_schema_3_errors_name_the_field(knobs, edit, match):
    d = json.loads(json.dumps(knobs[0].to_dict()))
    edit(d)
    with pytest.raises(ProfileError, match=match):
        Profile.from_dict(d, "p.json")


def test_profiles_with_other_settings_or_quantizers_do_not_pair(knobs):
    edge, cloud = knobs
    c0 = replace(cloud.cuts[0], widths={4: cloud.cuts[0].widths[4]})
    with pytest.raises(SolveError, match="other \\(width, bits\\) settings"):
        check_compatible(edge, replace(cloud, cuts=(c0, *cloud.cuts[1:])))
    with pytest.raises(SolveError, match="different raw quantizers"):
        check_compatible(edge, replace(cloud, quantizer="other"))


def test_solver_has_every_width_and_quant_candidate(knobs):
    edge, cloud = knobs
    cs = CandidateSet(edge, cloud)
    kinds = {s.kind for s in cs.specs}
    assert CandidateKind.QUANT in kinds
    c = edge.cuts[1].id
    assert {s.width for s in cs.specs if s.cut == c and s.kind == CandidateKind.SPLIT} == {None, 4, 8}
    i = cs.index(CandidateSpec.split(c, 4, 8))
    assert cs.payload_bytes[i] == pytest.approx(edge.cuts[1].widths[8][4].bytes_mean)
    assert cs.index(f"{c}@q4") == cs.index(CandidateSpec.quant(c, 4))
    assert cs.payload_bytes[cs.index(CandidateSpec.quant(c, 4))] == pytest.approx(edge.cuts[1].quant[4].bytes_mean)


def test_narrow_widths_win_on_a_slow_link_and_the_plan_names_them(knobs):
    edge, cloud = knobs
    slow = solve(edge, cloud, ConstantLink("20kbit"), max_loss=100.0)
    assert slow.chosen.kind == CandidateKind.SPLIT and slow.chosen.width == 4  # the fewest bytes
    d = slow.to_dict()
    assert d["width"] == 4 and CandidateSpec.parse(d["plan"]) == slow.spec
    assert {"width", "plan"} <= set(d["candidates"][0])
    strict = solve(edge, cloud, ConstantLink("20kbit"), max_loss=0.5)  # narrow widths lose >= 1.2 pp here
    assert strict.chosen.width is None


def test_candidate_spec_spellings():
    assert CandidateSpec.parse("relu_5@4w8") == CandidateSpec.split("relu_5", 4, 8)
    assert CandidateSpec.parse("relu_5@4") == CandidateSpec.split("relu_5", 4)
    assert CandidateSpec.parse("relu_5@q3") == CandidateSpec.quant("relu_5", 3)
    assert CandidateSpec.quant("relu_5", 3).label == "relu_5 quant 3 bits"
    with pytest.raises(PlannerError, match="has no latent width"):
        CandidateSpec.parse("relu_5@q3w8")
    with pytest.raises(PlannerError, match="latent width"):
        CandidateSpec(CandidateKind.QUANT, "relu_5", 3, None, 8)


# -- the raw quantizer ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quantizer():
    gen = torch.Generator().manual_seed(0)
    feats = {"map": torch.relu(torch.randn(64, 8, 6, 6, generator=gen)) * torch.linspace(0.1, 4, 8)[None, :, None, None],
             "signed": torch.randn(64, 5, 12, generator=gen), "vec": torch.randn(64, 20, generator=gen)}
    return RawQuantizer.calibrate(feats, (2, 4, 8)), feats


def test_raw_quantizer_error_falls_with_bits_and_clips_per_channel(quantizer):
    q, feats = quantizer
    for cut, x in feats.items():
        errors = []
        for b in q.bits:
            codes = q.encode(x, cut, b)
            assert codes.dtype == torch.uint8 and codes.shape == x.shape and int(codes.max()) <= 2**b - 1
            errors.append(float(((q.decode(codes, cut, b) - x) ** 2).mean()))
        assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3 * float(x.var())
    clip = q.to_dict()["cuts"]["map"]["clip"]["8"]
    assert clip[-1] > 10 * clip[0]  # per-channel ranges follow the channels' scales
    assert q.to_dict()["cuts"]["map"]["nonneg"] and not q.to_dict()["cuts"]["signed"]["nonneg"]


def test_raw_quantizer_file_round_trip_and_errors(quantizer, tmp_path):
    q, feats = quantizer
    q.extra["model"] = "toy"
    q.save(tmp_path / "q.json")
    back = RawQuantizer.load(tmp_path / "q.json")
    assert back.id.startswith("toy/quant@") and back.id == q.id
    assert torch.equal(back.encode(feats["map"], "map", 4), q.encode(feats["map"], "map", 4))
    with pytest.raises(CompressError, match="no calibration for cut 'nope'"):
        q.encode(feats["map"], "nope", 4)
    with pytest.raises(CompressError, match=r"expects features of shape \(N, 8, 6, 6\)"):
        q.encode(feats["signed"], "map", 4)
    with pytest.raises(CompressError, match="trained bitwidths: 2, 4, 8"):
        q.encode(feats["map"], "map", 3)
    (tmp_path / "bad.json").write_text('{"format": "x"}')
    with pytest.raises(CompressError, match="not a raw-quantizer calibration"):
        RawQuantizer.load(tmp_path / "bad.json")


# -- the pipeline: widths and the raw quantizer through the codec ---------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    from planner.execution.pipeline import SplitPipeline
    from planner.modelspec import load_model

    loaded = load_model("resnet-fmnist")
    config = AEConfig([plan_cut("relu_5", (64, 7, 7)), plan_cut("relu_3", (32, 14, 14))], bits=(2, 4))
    ae = SharedAutoencoder(config).eval()
    ae.id = "resnet-fmnist/shared@test"
    p = SplitPipeline.from_model(loaded, ae, quantizer=None)
    x = p.input_tensor(np.zeros((16, 28, 28), np.uint8) + np.arange(16, dtype=np.uint8)[:, None, None] * 9)
    with torch.inference_mode():
        p.quantizer = RawQuantizer.calibrate({"relu_5": p.split("relu_5")[0](x)}, (2, 4))
    return p


def test_pipeline_sends_the_chosen_width_and_the_cloud_decodes_it(pipe):
    raw = np.full((1, 28, 28), 100, np.uint8)
    for width in (4, 16, None):
        payload, _ = pipe.edge_encode(raw, CandidateSpec.split("relu_5", 4, width))
        dec = codec.decode(payload)
        assert dec.shape == (1, width or 32, 7, 7) and not dec.coder_flag
        scores, _, _ = pipe.cloud_decode(payload)
        assert scores.shape == (1, 10)
    with pytest.raises(CompressError, match="serves latent widths 4, 8, 16, 32, not 12"):
        pipe.edge_encode(raw, "relu_5@4w12")


def test_pipeline_raw_quantizer_candidate(pipe):
    raw = np.full((1, 28, 28), 100, np.uint8)
    payload, _ = pipe.edge_encode(raw, "relu_5@q2")
    dec = codec.decode(payload)
    assert dec.coder_flag == codec.FLAG_RAWQUANT and dec.shape == (1, 64, 7, 7)
    scores, _, _ = pipe.cloud_decode(payload)
    with torch.inference_mode():
        head, tail = pipe.split("relu_5")
        f = head(pipe.input_tensor(raw))
        expected = tail(pipe.quantizer.decode(pipe.quantizer.encode(f, "relu_5", 2), "relu_5", 2))
    assert torch.allclose(scores, expected, atol=1e-5)
    with pytest.raises(CompressError, match="raw quantizer does not serve cut 'relu_3'"):
        pipe.edge_encode(raw, "relu_3@q2")
    bad = codec.encode(np.zeros((1, 32, 7, 7), np.uint8), "relu_5", 2, coder_flag=codec.FLAG_RAWQUANT)
    with pytest.raises(CompressError, match="expected"):
        pipe.cloud_decode(bad)
