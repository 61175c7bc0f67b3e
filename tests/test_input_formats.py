"""Cloud-only as a real client does it: the image input sent as a JPEG/WebP file at a quality, each a candidate
of its own (profile entry, solver row, `--plan cloud-only@jpeg90`), encoded on the edge and decoded by the
server through the codec's image stages; lossless stays a candidate and old profiles still load."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from planner.compress import codec
from planner.errors import CodecError, PlannerError, ProfileError
from planner.link import ConstantLink
from planner.profile.schema import BitsEntry, Profile
from planner.runtime.handlers import CloudHandler
from planner.runtime.server import CloudServer
from planner.solve import CandidateSet
from planner.types import CandidateKind, CandidateSpec
from tests.test_runtime_e2e import _t, make_pipeline, make_profiles

pytest.importorskip("PIL")


def smooth(n: int, c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Photo-like uint8 images (smooth gradients plus a little noise), batched."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = [(xx * (3 + k) + yy * (2 + k)) % 256 for k in range(c)]
    img = np.stack(base)[None].repeat(n, 0) + rng.integers(0, 8, size=(n, c, h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


# -- identity ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["cloud-only@jpeg90", "cloud-only jpeg90", "cloud-only@JPEG_Q90", "cloud-only@webp75"])
def test_spec_spellings_round_trip(text):
    spec = CandidateSpec.parse(text)
    assert spec.kind == CandidateKind.CLOUD_ONLY and spec.cut == "input" and spec.fmt in ("jpeg90", "webp75")
    assert CandidateSpec.parse(spec.arg) == spec == CandidateSpec.parse(spec.label)
    assert not spec.lossless and spec.is_end
    assert CandidateSpec.parse("cloud-only") == CandidateSpec.cloud_only() and CandidateSpec.cloud_only().lossless
    assert spec != CandidateSpec.cloud_only()


@pytest.mark.parametrize("bad", ["cloud-only@jpeg101", "cloud-only@jpeg0", "cloud-only@gif90", "cloud-only@webp"])
def test_bad_format_is_one_line(bad):
    with pytest.raises(PlannerError) as e:
        CandidateSpec.parse(bad)
    assert "\n" not in str(e.value) and ("quality" in str(e.value) or "not" in str(e.value))
    with pytest.raises(PlannerError, match="belongs to a cloud-only"):
        CandidateSpec(CandidateKind.RAW, "pool1", None, "float32", fmt="jpeg90")


def test_cli_refuses_a_bad_quality_in_one_line():
    for argv in (["run", "--model", "resnet-fmnist", "--plan", "cloud-only@jpeg101", "--n", "1",
                  "--bandwidth", "1mbit"],
                 ["profile", "--model", "resnet-fmnist", "--input-formats", "jpeg90,webp0"]):
        r = subprocess.run([sys.executable, "-m", "planner", *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
        assert "quality must be an integer in 1..100" in lines[-1] and "Traceback" not in r.stderr


# -- codec ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["jpeg", "webp"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (2, 1, 16, 24), (1, 3, 32, 32)])
def test_codec_image_stage_round_trip(stage, shape):
    x = smooth(*((shape[0], 1) + shape[1:] if len(shape) == 3 else shape)).reshape(shape)
    lo, hi = codec.encode(x, "input", mode="uint8", lossless=stage, level=30), \
        codec.encode(x, "input", mode="uint8", lossless=stage, level=95)
    for payload, q in ((lo, 30), (hi, 95)):
        d = codec.decode(payload)
        assert d.shape == shape and d.array.dtype == np.uint8 and d.lossless == stage and d.quality == q
        assert d.cut == "input" and d.bits is None
    err = [np.abs(codec.decode(p).array.astype(int) - x).mean() for p in (lo, hi)]
    assert err[1] <= err[0] and err[1] < 12  # a higher quality is closer to the pixels
    assert len(lo) < len(hi)


def test_codec_image_stage_refuses_bad_input_and_bytes():
    x = smooth(1, 3, 16, 16)
    with pytest.raises(CodecError, match="quality"):
        codec.encode(x, "input", mode="uint8", lossless="jpeg", level=101)
    with pytest.raises(CodecError, match="uint8"):
        codec.encode(x.astype(np.float32), "input", lossless="jpeg", level=90)
    with pytest.raises(CodecError, match="images"):
        codec.encode(smooth(1, 3, 4, 4).reshape(1, 2, 6, 4), "input", mode="uint8", lossless="jpeg", level=90)
    good = codec.encode(x, "input", mode="uint8", lossless="jpeg", level=90)
    other = codec.encode(smooth(1, 3, 8, 8), "input", mode="uint8", lossless="jpeg", level=90)
    bad = [good[:-7], good + b"\0", good[:30] + bytes([good[30] ^ 0xFF]) + good[31:]]
    # a well-framed message whose header declares 16x16 around an 8x8 file: refused before its pixels are decoded
    head = codec.read_header(good)
    forged = bytearray(good[:head.header_len]) + other[codec.read_header(other).header_len:]
    forged[20:24] = len(forged[head.header_len:]).to_bytes(4, "little")
    bad.append(_recrc(bytes(forged)))
    for data in bad:
        with pytest.raises(CodecError):
            codec.decode(data)
    with pytest.raises(CodecError, match="8x8"):
        codec.decode(bad[-1])


def _recrc(data: bytes) -> bytes:
    import zlib

    crc = zlib.crc32(data[codec.CRC_OFFSET + 4:], zlib.crc32(data[:codec.CRC_OFFSET]))
    return data[:codec.CRC_OFFSET] + crc.to_bytes(4, "little") + data[codec.CRC_OFFSET + 4:]


# -- profiles and the solver ---------------------------------------------------------------------------------
def with_formats(profiles, sizes: dict[str, float], accuracy: dict[str, float], ms: float = 0.3):
    """The hand-made profiles with lossy input entries (bytes, accuracy) on both sides."""
    out = []
    for p in profiles:
        formats = {f: BitsEntry(n, n, _t(ms), _t(ms), accuracy[f]) for f, n in sizes.items()}
        out.append(dataclasses.replace(p, input=dataclasses.replace(p.input, formats=formats)))
    return tuple(out)


@pytest.fixture(scope="module")
def pipe():
    return make_pipeline()


@pytest.fixture(scope="module")
def images():
    return smooth(12, 1, 28, 28)[:, 0], np.random.default_rng(0).integers(0, 10, size=12)


def test_profile_with_formats_planned_and_old_profiles_load(pipe, images, tmp_path):
    base = make_profiles(pipe, images[0][:1])
    edge, cloud = with_formats(base, {"jpeg90": 60.0, "jpeg50": 30.0, "webp75": 40.0},
                               {"jpeg90": 89.8, "jpeg50": 85.0, "webp75": 89.5})
    path = edge.save(tmp_path / "edge.json")
    assert Profile.load(path) == edge and json.loads(path.read_text())["schema_version"] == 4
    cs = CandidateSet(edge, cloud)
    labels = {s.arg for s in cs.specs}
    assert {"cloud-only", "cloud-only@jpeg90", "cloud-only@jpeg50", "cloud-only@webp75"} <= labels
    plan = cs.solve(ConstantLink(200_000, 20.0), max_loss=1.0)  # slow link: the smallest input within 1 pp
    assert plan.spec == CandidateSpec.cloud_only("webp75") and plan.to_dict()["plan"] == "cloud-only@webp75"
    assert plan.to_dict()["format"] == "webp75"
    assert cs.solve(ConstantLink(200_000, 20.0), max_loss=10.0).spec == CandidateSpec.cloud_only("jpeg50")
    assert plan.best_of("cloud-only").spec == CandidateSpec.cloud_only("webp75")
    assert plan.candidate("cloud-only@jpeg50").feasible is False
    # a schema-3 document (no formats, no version 4 fields) still loads, with no lossy candidates
    d = base[0].to_dict()
    d["schema_version"] = 3
    del d["input"]["formats"]
    old = Profile.from_dict(d)
    assert old.input.formats == {} and old.schema_version == 3
    assert not any(s.fmt for s in CandidateSet(old, base[1]).specs)
    d["input"]["formats"] = {"jpeg900": edge.input.formats["jpeg90"].to_dict()}
    with pytest.raises(ProfileError, match="input.formats.jpeg900"):
        Profile.from_dict(d)


# -- the runtime ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    srv = CloudServer(CloudHandler(make_pipeline()), port=0, workers=2, read_timeout=2.0)
    port = srv.start_in_thread()
    yield f"127.0.0.1:{port}"
    srv.stop_thread()


@pytest.mark.parametrize("fmt", ["jpeg50", "webp90"])
def test_round_trip_through_a_real_server(pipe, images, server, fmt):
    from planner.runtime.edge import EdgeClient

    x, y = images
    profiles = with_formats(make_profiles(pipe, x[:1]), {fmt: 50.0}, {fmt: 89.9})
    with EdgeClient(pipe, *profiles, cloud=server, link="50mbit", rtt="1ms", timeout=3.0, calibrate=False,
                    freshness_runs=0) as client:
        report = client.run(x[:4], y[:4], choice=f"cloud-only@{fmt}")
    for k, r in enumerate(report.results):
        assert r.error is None and not r.fallback and r.kind == CandidateKind.CLOUD_ONLY and r.format == fmt
        assert r.spec == CandidateSpec.cloud_only(fmt) and r.server_decode_ms > 0 and r.encode_ms > 0
        payload = pipe.input_payload(x[k:k + 1], fmt)
        assert r.request_bytes >= len(payload) and codec.decode(payload).quality == int(fmt[4:])
        expected = pipe.cloud_decode(payload)[0].numpy()  # what the model gives on the decoded pixels
        np.testing.assert_allclose(r.scores, expected, rtol=1e-4, atol=1e-4)


def test_profiler_measures_each_format(pipe, images, tmp_path, monkeypatch):
    from planner.datasets import DataSet, fingerprint
    from planner.profile.measure import ProfileSettings, profile_pipeline

    monkeypatch.setenv("PLANNER_CACHE", str(tmp_path))
    x = images[0]
    data = DataSet(x, None, fingerprint("test", x, None), "smooth")
    settings = ProfileSettings(role="both", threads=1, repeats=1, max_seconds=0.01, payload_samples=6,
                               input_formats=("jpeg90", "webp50"))
    prof = Profile.from_dict(profile_pipeline(pipe, settings, progress=False, data=data))
    assert list(prof.input.formats) == ["jpeg90", "webp50"]
    for fmt, e in prof.input.formats.items():
        sizes = [len(pipe.input_payload(x[i:i + 1], fmt)) for i in range(6)]
        assert e.bytes_mean == pytest.approx(np.mean(sizes)) and e.encode_ms.median > 0 and e.decode_ms.median > 0
        assert 0 <= e.accuracy <= 100
    assert any(s.fmt == "jpeg90" for s in CandidateSet(prof, prof).specs)
    with pytest.raises(ProfileError, match="quality"):
        ProfileSettings(input_formats=("jpeg101",))
    floats = DataSet(x.astype(np.float32) / 255, None, fingerprint("f", x.astype(np.float32), None), "floats")
    settings = dataclasses.replace(settings, input_formats=("jpeg90",))
    assert Profile.from_dict(profile_pipeline(pipe, settings, progress=False, data=floats)).input.formats == {}


def test_the_input_coder_is_the_registered_one_and_names_its_payloads(pipe, images):
    from planner.execution.coders import InputCoder, coder_for, coder_of_payload

    spec = CandidateSpec.cloud_only("webp75")
    coder = coder_for(spec)
    assert isinstance(coder, InputCoder) and coder is coder_for(CandidateSpec.cloud_only())
    payload, st = pipe.edge_encode(images[0][:1], spec)
    dec = codec.decode(payload)
    assert coder_of_payload(dec) is coder and pipe.payload_spec(dec) == spec and st.encode_ms > 0
    assert pipe.payload_spec(codec.decode(pipe.input_payload(images[0][:1]))) == CandidateSpec.cloud_only()
    assert coder.formats(pipe, ["jpeg90", "webp50"]) == ("jpeg90", "webp50")
    tokens = make_pipeline()
    tokens.input_shape = (16,)  # not an image: no lossy formats
    assert coder.formats(tokens, ["jpeg90"]) == ()
    with pytest.raises(PlannerError, match="cannot send its input as jpeg90"):
        tokens.check(CandidateSpec.cloud_only("jpeg90"))


def test_the_ends_crossing_and_the_plan_table_use_the_best_cloud_only(pipe, images):
    from planner.cli.plan import format_table

    base = make_profiles(pipe, images[0][:1])
    small = base[0].input.compressed_bytes / 4
    edge, cloud = with_formats(base, {"webp50": small, "jpeg95": small * 8}, {"webp50": 89.5, "jpeg95": 90.0})
    lossless = CandidateSet(*base).ends_crossing(rtt=20, low="100bit")
    cs = CandidateSet(edge, cloud)
    assert cs.ends_crossing(rtt=20, low="100bit") < lossless  # a 4x smaller input: cloud-only wins from a lower bandwidth
    assert cs.ends_crossing(rtt=20, low="100bit", max_loss=0.1) == pytest.approx(lossless)  # webp50 (0.5 pp) out of budget
    text = format_table(cs.solve(ConstantLink(50e6, 1.0)), 1)
    assert "cloud-only webp50" in text and "cloud-only jpeg95" not in text and "\n*" in "\n" + text.split("\n", 2)[2]
