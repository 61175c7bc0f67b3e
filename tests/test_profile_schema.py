import copy
import json
import subprocess
import sys

import pytest

from planner.errors import ProfileError, SolveError
from planner.profile import SCHEMA_VERSION, Profile, check_compatible, load_profile
from planner.profile.synthetic import synthetic_pair, synthetic_profile


@pytest.fixture(scope="module")
def pair():
    return synthetic_pair(seed=7, n_cuts=4, bits=(2, 4, 8))


def test_round_trip_file_and_dict(tmp_path, pair):
    edge, cloud = pair
    for p in pair:
        path = p.save(tmp_path / "sub" / f"{p.role}.json")
        loaded = load_profile(path)
        assert loaded == p and loaded.source == str(path)
        assert Profile.from_dict(json.loads(path.read_text())) == p
        assert Profile.from_dict(p.to_dict()).to_dict() == p.to_dict()
    doc = edge.to_dict()
    assert list(doc)[0] == "schema_version" and doc["schema_version"] == SCHEMA_VERSION
    assert doc["cuts"][0]["tail_ms"] is None and doc["cuts"][0]["head_ms"]["n"] == 30
    assert set(doc["cuts"][0]["bits"]) == {"2", "4", "8"}
    assert cloud.to_dict()["cuts"][0]["head_ms"] is None


def _broken(tmp_path, profile, mutate):
    doc = copy.deepcopy(profile.to_dict())
    mutate(doc)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("mutate, field, message", [
    (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "schema_version", "newer than this planner reads"),
    (lambda d: d.update(exchange_ms={"median": -1, "iqr": 0, "n": 3}), "exchange_ms.median", "must be >= 0"),
    (lambda d: d.update(schema_version="1"), "schema_version", "expected an integer"),
    (lambda d: d.pop("whole_model_ms"), "whole_model_ms", "missing"),
    (lambda d: d["cuts"][1].pop("float32_bytes"), r"cuts\[1\].float32_bytes", "missing"),
    (lambda d: d["cuts"][0].update(head_ms={"median": -1.0, "iqr": 0.1, "n": 3}), r"cuts\[0\].head_ms.median", ">= 0"),
    (lambda d: d["cuts"][0]["bits"]["4"].update(bytes_mean="big"), r"cuts\[0\].bits.4.bytes_mean", "a number"),
    (lambda d: d["cuts"][0]["bits"].update({"5": d["cuts"][0]["bits"]["4"]}), r"cuts\[0\].bits.5", "not one of"),
    (lambda d: d["cuts"][2]["bits"]["8"].update(accuracy=130.0), r"cuts\[2\].bits.8.accuracy", "percentage"),
    (lambda d: d.update(role="fog"), "role", "must be one of edge, cloud, both"),
    (lambda d: d.update(reply_bytes=True), "reply_bytes", "an integer"),
    (lambda d: d.update(colour="blue"), "colour", "unknown field"),
    (lambda d: d["device"].pop("threads"), "device.threads", "missing"),
    (lambda d: d["cuts"][0]["raw"].pop("float32"), r"cuts\[0\].raw.float32", "missing"),
    (lambda d: d["cuts"][1].update(id="cut0"), r"cuts\[1\].id", "duplicate"),
    (lambda d: d["cuts"][1].update(index=0), r"cuts\[1\].index", "execution order"),
    (lambda d: d["input"].update(shape=[1, 0, 28]), r"input.shape\[1\]", "> 0"),
    (lambda d: d.update(bits=[2, 2]), "bits", "distinct"),
    (lambda d: d.update(scaled={"compute": 0}), "scaled.compute", "> 0"),
])
def test_malformed_profiles_name_file_and_field(tmp_path, pair, mutate, field, message):
    path = _broken(tmp_path, pair[0], mutate)
    with pytest.raises(ProfileError, match=rf"profile {path}: field {field}: .*{message}"):
        Profile.load(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(ProfileError, match="no such file"):
        Profile.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProfileError, match=r"bad.json: not JSON"):
        Profile.load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ProfileError, match=r"list.json: field \(top level\): expected a JSON object"):
        Profile.load(tmp_path / "list.json")


def test_scaled_multiplies_every_compute_time_only(pair):
    edge = pair[0]
    slow = edge.scaled(compute=8.0)
    assert slow.scaled_by == {"compute": 8.0} and slow.to_dict()["scaled"] == {"compute": 8.0}
    assert slow.scaled(0.5).scaled_by == {"compute": 4.0}
    assert slow.whole_model_ms.median == pytest.approx(8 * edge.whole_model_ms.median)
    assert slow.whole_model_ms.iqr == pytest.approx(8 * edge.whole_model_ms.iqr)
    assert slow.input.encode_ms.median == pytest.approx(8 * edge.input.encode_ms.median)
    for a, b in zip(edge.cuts, slow.cuts, strict=True):
        assert b.head_ms.median == pytest.approx(8 * a.head_ms.median) and b.tail_ms is None
        assert b.raw["float32"].serialize_ms.median == pytest.approx(8 * a.raw["float32"].serialize_ms.median)
        assert b.bits[4].encode_ms.median == pytest.approx(8 * a.bits[4].encode_ms.median)
        assert b.bits[4].bytes_mean == a.bits[4].bytes_mean and b.bits[4].accuracy == a.bits[4].accuracy
        assert b.head_ms.n == a.head_ms.n
    assert Profile.from_dict(slow.to_dict()) == slow
    with pytest.raises(ProfileError, match="positive"):
        edge.scaled(compute=-1)


def test_frames_and_csv(tmp_path, pair):
    edge = pair[0]
    cuts = edge.cuts_frame()
    assert list(cuts["cut"]) == [c.id for c in edge.cuts]
    assert cuts["tail_ms"].isna().all() and (cuts["head_ms"] > 0).all()
    bits = edge.bits_frame()
    assert len(bits) == 4 * 3 and set(bits["bits"]) == {2, 4, 8}
    paths = edge.to_csv(tmp_path, stem="edge")
    assert [p.name for p in paths] == ["edge.cuts.csv", "edge.bits.csv"]
    assert paths[1].read_text().splitlines()[0].startswith("cut,index,method,width,bits,bytes_mean")


def test_check_compatible(pair):
    edge, cloud = pair
    check_compatible(edge, cloud)
    other = synthetic_profile("cloud", seed=7, n_cuts=4, bits=(2, 4, 8), model="resnet-fmnist")
    with pytest.raises(SolveError, match="different models: 'synthetic' .* vs 'resnet-fmnist'"):
        check_compatible(edge, other)
    other_ae = synthetic_profile("cloud", seed=7, n_cuts=4, bits=(2, 4, 8), autoencoder="ae-v2")
    with pytest.raises(SolveError, match="different autoencoders: 'synthetic-ae' .* vs 'ae-v2'"):
        check_compatible(edge, other_ae)
    with pytest.raises(SolveError, match="profiled for the cloud role but is given as the edge profile"):
        check_compatible(cloud, edge)
    fewer = synthetic_profile("cloud", seed=7, n_cuts=3, bits=(2, 4, 8))
    with pytest.raises(SolveError, match="different cuts"):
        check_compatible(edge, fewer)


def test_planning_modules_do_not_import_torch():
    code = ("import sys, planner, planner.profile, planner.profile.synthetic, planner.link, planner.solve, planner.cli.plan\n"
            "e, c = planner.profile.synthetic.synthetic_pair(0)\n"
            "p = planner.plan(e, c, planner.TraceLink.load('outage', rtt='20ms'))\n"
            "p.table, p.pareto, planner.breakpoints(e, c), e.bits_frame()\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_documented_example_is_a_valid_profile():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "profile-format.md").read_text()
    example = json.loads(re.search(r"```json\n(.*?)```", doc, re.S).group(1))
    profile = Profile.from_dict(example, source="docs/profile-format.md")
    assert profile.to_dict() == example
    assert profile.cuts[0].bits[4].decode_ms is None and profile.whole_model_ms.p90 == 12.6
