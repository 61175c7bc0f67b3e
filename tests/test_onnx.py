"""ONNX export and the ONNX Runtime pipeline: graphs agree with PyTorch, manifests are checked, CLIs run it.

Agreement per exported (cut, bits) on 500 test images: the uint8 codes equal PyTorch's except on at most
0.1 % of elements, which differ by exactly one quantization step (a latent that falls within float rounding
of a code boundary: measured 0 at <= 6 bits and ~1e-5 of elements at 8 bits); predictions identical on
>= 99.5 % of images. benchmarks/runtimes.py checks the full 10,000 test images for every exported candidate.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from planner.compress import codec
from planner.errors import ExportError, PlannerError
from planner.execution.pipeline import SplitPipeline
from planner.types import CandidateSpec

pytestmark = pytest.mark.onnx
pytest.importorskip("onnxruntime", reason="needs ONNX Runtime (pip install 'planner[onnx]')")

from planner.execution.onnx_export import export_pipeline, load_manifest, state_sha256  # noqa: E402
from planner.execution.onnx_runtime import OnnxPipeline, runtime_pipeline  # noqa: E402

N_IMAGES = 500
VGG_CUTS = ["block1_2", "pool2", "pool3"]
VGG_BITS = [2, 4, 8]
RESNET_BITS = [2, 8]
MAX_OFF_BY_ONE = 1e-3
MIN_AGREE = 0.995


@pytest.fixture(scope="module")
def images():
    from planner.data import load_arrays

    x, y = load_arrays("test")
    return x[:N_IMAGES], y[:N_IMAGES]


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    """The zoo VGG with its shared autoencoder, exported at three served cuts and three bitwidths."""
    pipe = SplitPipeline.from_zoo("vgg-fmnist")
    out = tmp_path_factory.mktemp("vgg_onnx")
    export_pipeline(pipe, out, cuts=VGG_CUTS, bits=VGG_BITS)
    return pipe, OnnxPipeline(pipe, out, threads=1), out


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """The zoo ResNet at its first and last served cuts."""
    pipe = SplitPipeline.from_zoo("resnet-fmnist")
    out = tmp_path_factory.mktemp("resnet_onnx")
    served = pipe.ae.cuts
    export_pipeline(pipe, out, cuts=[served[0], served[-1]], bits=RESNET_BITS)
    return pipe, OnnxPipeline(pipe, out, threads=1), out


def assert_agree(pipe: SplitPipeline, onnx: OnnxPipeline, raw: np.ndarray) -> dict:
    """Codes within one step on <= 0.1 % of elements, raw features within 1e-4, predictions >= 99.5 % equal,
    for every exported (cut, bits); the whole model's predictions too. Returns the worst figures."""
    worst = {"off_by_one": 0.0, "agree": 1.0}
    x_t = pipe.input_tensor(raw)
    x = onnx.input_array(raw)
    with torch.inference_mode():
        ref = pipe.model(x_t).numpy()
        assert (onnx.model_scores(x).argmax(1) == ref.argmax(1)).mean() >= MIN_AGREE
        for cut, entry in onnx.manifest["cuts"].items():
            head, tail = pipe.split(cut)
            feature = head(x_t)
            np.testing.assert_allclose(onnx.head_feature(x, cut), feature.numpy(), atol=1e-4, rtol=1e-4)
            np.testing.assert_allclose(onnx.tail_scores(feature.numpy(), cut), tail(feature).numpy(), atol=1e-3, rtol=1e-3)
            for b_text in entry.get("cloud", {}):
                b = int(b_text)
                codes_pt = pipe.ae.encode(feature, cut, b).numpy()
                codes_ort = onnx.edge_codes(x, cut, b)
                assert codes_ort.dtype == np.uint8 and codes_ort.shape == codes_pt.shape
                diff = np.abs(codes_ort.astype(int) - codes_pt.astype(int))
                assert diff.max() <= 1, (cut, b)
                pred_pt = tail(pipe.ae.decode(torch.from_numpy(codes_pt), cut, b)).numpy().argmax(1)
                pred_ort = onnx.cloud_scores(codes_ort, cut, b).argmax(1)
                worst["off_by_one"] = max(worst["off_by_one"], float((diff > 0).mean()))
                worst["agree"] = min(worst["agree"], float((pred_ort == pred_pt).mean()))
    assert worst["off_by_one"] <= MAX_OFF_BY_ONE and worst["agree"] >= MIN_AGREE, worst
    return worst


def test_vgg_graphs_agree_with_pytorch(vgg, images):
    pipe, onnx, _ = vgg
    assert_agree(pipe, onnx, images[0])


def test_resnet_graphs_agree_with_pytorch(resnet, images):
    pipe, onnx, _ = resnet
    assert len(onnx.exported_cuts) == 2 and set(onnx.exported_cuts) <= set(pipe.ae.cuts)
    assert_agree(pipe, onnx, images[0])


def test_stages_frame_the_same_codec_bytes(vgg, images):
    """edge_encode / cloud_decode run by ONNX Runtime interoperate with PyTorch's, any batch size."""
    pipe, onnx, _ = vgg
    raw = images[0][:7]
    for cut, bits in (("pool2", 4), ("pool3", 8), ("pool3", None), ("input", None)):
        spec = CandidateSpec.cloud_only() if cut == "input" else CandidateSpec.raw(cut) if bits is None else (
            CandidateSpec.split(cut, bits))
        payload_pt, _ = pipe.edge_encode(raw, spec)
        payload_ort, st = onnx.edge_encode(raw, spec)
        head = codec.read_header(payload_ort)  # codes may be entropy-coded: the header says what they are
        assert (head.cut, head.bits, head.shape) == (cut, bits, codec.read_header(payload_pt).shape)
        assert payload_ort == payload_pt or bits in (None, 8)  # floats: last ulp; 8 bits: a rare code off by one
        for a, b in ((payload_ort, payload_pt), (payload_pt, payload_ort)):
            s_ort, st_cloud, _ = onnx.cloud_decode(a)
            s_pt, _, _ = pipe.cloud_decode(b)
            assert s_ort.shape == (7, 10) and torch.equal(s_ort.argmax(1), s_pt.argmax(1))
            assert st_cloud.tail_ms > 0
    jpeg = CandidateSpec.cloud_only("jpeg90")  # the input as a real client sends it: the same files both ways
    payload_pt, _ = pipe.edge_encode(raw, jpeg)
    payload_ort, _ = onnx.edge_encode(raw, jpeg)
    assert payload_ort == payload_pt and codec.decode(payload_ort).quality == 90
    assert torch.equal(onnx.cloud_decode(payload_pt)[0].argmax(1), pipe.cloud_decode(payload_pt)[0].argmax(1))
    scores, st = onnx.edge_local(raw[:1])
    assert scores.shape == (1, 10) and st.head_ms > 0


def test_manifest_records_what_was_exported(vgg):
    pipe, _, out = vgg
    m = load_manifest(out)
    assert m["model"] == "vgg-fmnist" and m["opset"] == 17 and m["autoencoder"] == pipe.ae_id
    assert m["weights_sha256"] == state_sha256(pipe.model) and m["autoencoder_sha256"] == state_sha256(pipe.ae)
    assert m["weights_sha256"] == pipe.weights_sha256  # one digest, one definition
    assert m["input"]["shape"] == [1, 28, 28] and m["input"]["batch"] == "dynamic"
    assert list(m["cuts"]) == VGG_CUTS and m["bits"] == VGG_BITS
    entry = m["cuts"]["pool2"]
    assert entry["latent_shape"] == list(pipe.ae.latent_shape("pool2")) and set(entry["cloud"]) == {"2", "4", "8"}
    assert all((out / f).is_file() for f in m["files"]) and len(m["files"]) == 1 + 3 * (3 + 3)


def test_runtime_refuses_a_foreign_or_changed_export(vgg, tmp_path):
    pipe, onnx, out = vgg
    other = SplitPipeline.from_zoo("vgg-fmnist", "independent")
    with pytest.raises(ExportError, match="autoencoder"):
        OnnxPipeline(other, out)
    with pytest.raises(ExportError, match="model 'vgg-fmnist', not 'resnet-fmnist'"):
        OnnxPipeline(SplitPipeline.from_zoo("resnet-fmnist"), out)
    tampered = tmp_path / "t"
    tampered.mkdir()
    for f in out.rglob("*"):
        if f.is_file():
            (tampered / f.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
            (tampered / f.relative_to(out)).write_bytes(f.read_bytes())
    (tampered / "model.onnx").write_bytes(b"junk")
    with pytest.raises(ExportError, match="model.onnx is missing or changed"):
        OnnxPipeline(pipe, tampered)
    with pytest.raises(ExportError, match="no manifest.json"):
        OnnxPipeline(pipe, tmp_path)
    with pytest.raises(ExportError, match="no graphs for cut 'pool1'.*--cuts all"):
        onnx.check("pool1@4")
    with pytest.raises(ExportError, match="lacks"):
        onnx.check_complete()
    with pytest.raises(PlannerError, match="--onnx DIR"):
        runtime_pipeline(pipe, "onnxruntime")


def test_missing_onnxruntime_names_the_extra(vgg, monkeypatch):
    pipe, _, out = vgg
    from planner.extras import MissingExtra

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtra, match=r"planner\[onnx\]"):
        runtime_pipeline(pipe, "onnxruntime", out)


class Residual(nn.Module):
    """A user model with a residual block and a flatten: cuts between blocks only."""

    input_shape = (3, 16, 16)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5))

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.relu(x + self.block(x)))


def test_user_model_raw_graphs(tmp_path):
    torch.manual_seed(0)
    pipe = SplitPipeline(Residual().eval(), "tests:residual", Residual.input_shape)
    m = export_pipeline(pipe, tmp_path, cuts="all")
    assert m["autoencoder"] is None and m["bits"] == [] and all("edge" not in e for e in m["cuts"].values())
    onnx = OnnxPipeline(pipe, tmp_path, threads=1)
    x = torch.randn(5, *Residual.input_shape)
    with torch.inference_mode():
        np.testing.assert_allclose(onnx.model_scores(x.numpy()), pipe.model(x).numpy(), atol=1e-5)
        for cut in m["cuts"]:
            payload, _ = onnx.edge_encode(x, CandidateSpec.raw(cut))
            scores, _, _ = onnx.cloud_decode(payload)
            np.testing.assert_allclose(scores.numpy(), pipe.model(x).numpy(), atol=1e-4)
    with pytest.raises(ExportError, match="no autoencoder"):
        export_pipeline(pipe, tmp_path / "x", cuts="served")


def _filtered_profiles(tmp_path: Path, cuts: list[str], bits: list[int]) -> tuple[Path, Path]:
    """The committed vgg-fmnist profiles restricted to the exported cuts and bits, on an edge whose whole model
    takes 1 s (so that splitting wins at 0.1 Mbit/s)."""
    from planner.profile.store import find_profiles

    paths = []
    for role, src in zip(("edge", "cloud"), find_profiles("vgg-fmnist"), strict=True):
        d = json.loads(Path(src).read_text())
        d["cuts"] = [c for c in d["cuts"] if c["id"] in cuts]
        for c in d["cuts"]:
            c["bits"] = {b: v for b, v in c["bits"].items() if int(b) in bits}
            c["widths"] = {w: {b: v for b, v in t.items() if int(b) in bits} for w, t in c.get("widths", {}).items()}
        d["bits"] = bits
        if role == "edge":
            d["whole_model_ms"] = {"median": 1000.0, "iqr": 0.0, "n": 1, "p10": 1000.0, "p90": 1000.0}
        paths.append(tmp_path / f"{role}.json")
        paths[-1].write_text(json.dumps(d))
    return paths[0], paths[1]


def test_cli_export_serve_and_run_on_onnxruntime(tmp_path, capsys):
    """`planner export`, `planner serve --runtime onnxruntime`, `planner run --edge-runtime onnxruntime --json`."""
    from planner.cli import main

    out = tmp_path / "onnx"
    assert main(["export", "--model", "vgg-fmnist", "--out", str(out), "--cuts", "pool2,pool3", "--bits", "2,4"]) == 0
    assert "11 graphs" in capsys.readouterr().out and json.loads((out / "manifest.json").read_text())["bits"] == [2, 4]
    assert main(["export", "--model", "vgg-fmnist", "--out", str(tmp_path / "b"), "--cuts", "nope"]) == 2
    assert "error: not inner cuts of vgg-fmnist: nope" in capsys.readouterr().err
    edge, cloud = _filtered_profiles(tmp_path, ["pool2", "pool3"], [2, 4])
    run = ["run", "--model", "vgg-fmnist", "--bandwidth", "0.1mbit", "--rtt", "2ms", "--max-loss", "100", "--n", "20",
           "--edge", str(edge), "--cloud-profile", str(cloud), "--edge-runtime", "onnxruntime",
           "--explore", "0", "--no-calibrate"]  # the plans these profiles give, with no probe of edge-only
    assert main(run + ["--n", "1"]) == 2 and "--onnx DIR" in capsys.readouterr().err
    server = subprocess.Popen([sys.executable, "-m", "planner", "serve", "--model", "vgg-fmnist", "--runtime",
                               "onnxruntime", "--onnx", str(out), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        port = re.search(r"on 127\.0\.0\.1:(\d+)", line)
        assert port, line
        assert main(run + ["--cloud", f"127.0.0.1:{port[1]}", "--onnx", str(out), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["errors"] == 0 and report["fallbacks"] == 0 and report["accuracy"] >= 75.0
        assert {p["cut"] for p in report["plans"]} <= {"pool2", "pool3", "input"}, report["plans"]
        assert any(p["cut"] in ("pool2", "pool3") for p in report["plans"]), report["plans"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_profile_times_from_onnxruntime(tmp_path):
    """retime_profile puts the graphs' times into a measured profile; the solver plans with it."""
    from test_runtime_e2e import make_pipeline

    from planner.profile.measure import ProfileSettings, profile_pipeline
    from planner.profile.onnx import retime_profile
    from planner.profile.schema import Profile
    from planner.solve import prepare

    pipe = make_pipeline()
    export_pipeline(pipe, tmp_path)
    onnx = OnnxPipeline(pipe, tmp_path, threads=1)
    onnx.check_complete()
    settings = ProfileSettings(role="both", threads=1, repeats=3, max_seconds=0.02, payload_samples=5,
                               accuracy_limit=50)
    torch_profile = profile_pipeline(pipe, settings, progress=False)
    d = retime_profile(json.loads(json.dumps(torch_profile)), onnx, settings, edge=True, cloud=True)
    assert d["settings"]["edge_runtime"].startswith("onnxruntime") and "onnxruntime" in d["notes"]
    for new, old in zip(d["cuts"], torch_profile["cuts"], strict=True):
        assert new["head_ms"] != old["head_ms"] and new["tail_ms"] != old["tail_ms"]
        assert new["raw"] == old["raw"]  # the codec's serialize / deserialize times stay
        for b, e in new["bits"].items():
            assert e["bytes_mean"] == old["bits"][b]["bytes_mean"] and e["accuracy"] == old["bits"][b]["accuracy"]
            assert 0.0 <= e["encode_ms"]["p10"] <= e["encode_ms"]["median"] and e["decode_ms"]["median"] >= 0.0
    profile = Profile.from_dict(d)
    assert len(prepare(profile, profile)) == len(prepare(Profile.from_dict(torch_profile), Profile.from_dict(torch_profile)))


def test_onnx_runtime_announces_the_same_identity(vgg):
    """The ONNX Runtime backend's WELCOME carries what the torch one does (weights digest, autoencoder, quantizer)."""
    from planner.runtime.handlers import CloudHandler
    from planner.runtime.server import CloudServer

    pipe, onnx, _ = vgg
    assert onnx.identity() == pipe.identity() and pipe.identity()["weights_sha256"] == pipe.weights_sha256
    welcome = CloudServer(CloudHandler(onnx, warm=False), port=0).welcome()
    assert {k: welcome[k] for k in pipe.identity()} == pipe.identity()
