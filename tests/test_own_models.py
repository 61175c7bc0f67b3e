"""The whole chain on models users bring (tests/user_models.py) and data the tests write: an image folder and
.npz files, with and without labels. Each model is trained briefly on an easy synthetic task (a bright square
in one of four quadrants), then: autoencoder (distillation; CE when labelled) -> accuracy per (cut, bits) ->
profile -> a cloud server and an edge client exchanging real payloads."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import user_models as um
from PIL import Image

from planner import DataError, MismatchError
from planner.compress.aeconfig import AEConfig
from planner.compress.aefile import load_autoencoder_file, save_autoencoder
from planner.compress.autoencoder import SharedAutoencoder
from planner.compress.backbone import default_cuts
from planner.compress.train import TrainConfig
from planner.compress.trainjob import split_data, train_autoencoder
from planner.datasets import load_data
from planner.evaluate import score
from planner.execution.pipeline import SplitPipeline
from planner.modelspec import load_model
from planner.profile.accuracy import accuracy_table
from planner.profile.measure import ProfileSettings, profile_pipeline
from planner.profile.schema import Profile
from planner.runtime.edge import EdgeClient
from planner.runtime.handlers import CloudHandler
from planner.runtime.server import CloudServer


def quadrants(n: int, shape, seed: int = 0):
    """uint8 images (N, C, H, W): noise plus a bright square in quadrant y (4 classes)."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    x = rng.integers(0, 60, size=(n, c, h, w), dtype=np.uint8)
    y = rng.integers(0, 4, size=n)
    for i, k in enumerate(y):
        top, left = (k // 2) * h // 2, (k % 2) * w // 2
        x[i, :, top + h // 8: top + 3 * h // 8, left + w // 8: left + 3 * w // 8] = 230
    return x, y.astype(np.int64)


def write_folder(root, x, y):
    for i, (img, k) in enumerate(zip(x, y, strict=True)):
        d = root / f"class{k}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0) if img.shape[0] == 3 else img[0]).save(d / f"{i:04d}.png")
    return root


def fit_backbone(model, x, y, steps=80, seed=0):
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x).float() / 255, torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(steps):
        i = torch.randint(0, len(yt), (32,))
        loss = F.cross_entropy(model(xt[i]), yt[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _prepare(tmp_path, name, data_kind, labelled=True, n=480):
    model = getattr(um, name)()
    x, y = quadrants(n, model.input_shape)
    fit_backbone(model, x, y)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    if data_kind == "folder":
        path = write_folder(tmp_path / "images", x, y)
    else:  # N x H x W for single-channel models: the loader adds the channel
        path = tmp_path / "data.npz"
        arrays = {"x": x[:, 0] if x.shape[1] == 1 else x}
        np.savez(path, **arrays, **({"y": y} if labelled else {}))
    loaded = load_model(f"user_models:{name}", tmp_path / "w.pt", "x".join(map(str, model.input_shape)))
    return loaded, load_data(str(path), loaded)


CASES = [("alexnet", "folder", True), ("mobile_se", "npz", True), ("inception", "npz", True),
         ("conv_gru", "npz", True), ("vit", "npz", False)]


@pytest.mark.slow
@pytest.mark.parametrize("name,data_kind,labelled", CASES)
def test_whole_chain(tmp_path, name, data_kind, labelled):
    torch.set_num_threads(1)
    loaded, data = _prepare(tmp_path, name, data_kind, labelled)
    assert data.metric == ("accuracy" if labelled else "agreement")
    base = score(loaded.model, loaded.model, data, loaded.preprocess)
    assert base["n"] == len(data)
    if labelled:
        assert base["accuracy"] > 90, base
    served = default_cuts(loaded)
    assert served, name
    kinds = {len(c.shape) for c in served}
    assert kinds == ({2} if name == "vit" else {3}), [(c.id, c.shape) for c in served]
    deepest = served[-1].id
    card = train_autoencoder(loaded, split_data(data, loaded.preprocess, seed=0), cut_ids=[deepest],
                             bits=(4, 8), cfg=TrainConfig(steps=200, batch_size=64, recal_batches=4,
                                                          recal_batch_size=128),
                             out=tmp_path / "ae.pt", progress=False, threads=1)
    assert card["served_cuts"] == [deepest] and card["weights_sha256"] == loaded.weights_sha256
    assert card["data"] == data.fingerprint and card["metric"] == data.metric
    pipeline = SplitPipeline.from_model(loaded, tmp_path / "ae.pt")
    table = accuracy_table(pipeline, [4, 8], limit=240, data=data, use_cache=False)
    assert table["metric"] == data.metric and table["n_all"] == 240 and 0 < table["n"] <= 240
    at8 = table["cuts"][deepest]["bits"]["8"]
    assert at8 >= table["backbone"] - 1.0, (name, deepest, at8, table["backbone"])
    print(f"\nFIGURES {name}: {data.metric} backbone {table['backbone']:.1f}%, {deepest} "
          f"{tuple(served[-1].shape)} @8 {at8:.1f}% @4 {table['cuts'][deepest]['bits']['4']:.1f}% "
          f"(n={table['n']}); {len(served)} default served cuts; train-ae 200 steps {card['train']['train_seconds']} s")

    settings = ProfileSettings(role="both", threads=1, repeats=2, max_seconds=0.01, payload_samples=8,
                               accuracy_limit=240)
    profile = Profile.from_dict(profile_pipeline(pipeline, settings, progress=False, data=data))
    assert profile.settings["weights_sha256"] == loaded.weights_sha256
    assert profile.settings["data"] == data.take(240).fingerprint and profile.settings["metric"] == data.metric
    cut = next(c for c in profile.cuts if c.id == deepest)
    assert cut.bits[8].accuracy == at8
    server = CloudServer(CloudHandler(pipeline), port=0)
    port = server.start_in_thread()
    try:
        with EdgeClient(pipeline, profile, profile, cloud=f"127.0.0.1:{port}", link="1mbit") as client:
            assert client.check_cloud()["weights_sha256"] == loaded.weights_sha256
            raw = data.raw[:6]
            pinned = client.run(raw, choice=(deepest, 8))
            planned = client.run(raw)
            cloud_only = client.run(raw, choice="cloud-only")
    finally:
        server.stop_thread()
    assert [r.kind for r in pinned] == ["split"] * 6 and pinned.fallbacks == 0
    assert planned.answered and planned.fallbacks == 0 and cloud_only.fallbacks == 0
    with torch.no_grad():
        want = loaded.model(loaded.preprocess(raw)).argmax(1).tolist()
    assert cloud_only.predictions == want


def test_autoencoder_serves_odd_maps_vectors_and_tokens(tmp_path):
    cuts = [("a", (8, 13, 13)), ("b", (4, 55, 55)), ("v", (64,)), ("t", (17, 48))]
    ae = SharedAutoencoder(AEConfig.for_cuts(cuts, bits=(2, 8))).eval()
    feats = {cid: torch.rand(3, *shape) for cid, shape in cuts}
    ae.calibrate(feats)
    save_autoencoder(ae, tmp_path / "ae.pt")
    again = load_autoencoder_file(tmp_path / "ae.pt")
    for cid, shape in cuts:
        codes = ae.encode(feats[cid], cid, 8)
        assert codes.dtype == torch.uint8
        rec = again.decode(codes, cid, 8)
        assert tuple(rec.shape) == (3, *shape), cid
        assert torch.allclose(rec, ae.decode(codes, cid, 8), atol=1e-2)
    assert ae.latent_shape("b") == (8, 28, 28) and ae.latent_shape("t") == (24, 17, 1)  # half the patch channels
    assert ae.latent_shape("v") == (32, 1, 1) and ae.widths("v") == (4, 8, 16, 32)


def test_data_errors_name_both_shapes_and_labels_optional(tmp_path):
    loaded = load_model("user_models:alexnet", input_shape="3x64x64")
    np.savez(tmp_path / "small.npz", x=np.zeros((4, 3, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"3x32x32.*3x64x64"):
        load_data(str(tmp_path / "small.npz"), loaded)
    with pytest.raises(DataError, match="--data"):
        load_data(None, loaded)
    x, _ = quadrants(6, (3, 20, 30))
    folder = tmp_path / "flat"
    folder.mkdir()
    for i, img in enumerate(x):  # images straight in the folder: unlabelled, resized to the input shape
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i}.jpg")
    ds = load_data(str(folder), loaded)
    assert ds.labels is None and ds.metric == "agreement" and ds.raw.shape == (6, 3, 64, 64)
    norm = load_model("user_models:alexnet", input_shape="3x64x64", normalize="0.5,0.25")
    assert torch.allclose(norm.preprocess(np.full((1, 3, 2, 2), 255, np.uint8)), torch.full((1, 3, 2, 2), 2.0))


def test_edge_refuses_a_cloud_with_other_weights(tmp_path):
    loaded = load_model("user_models:inception", input_shape="1x28x28")
    other = um.inception()
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    edge = SplitPipeline.from_model(loaded)
    cloud = SplitPipeline.from_model(load_model(other, input_shape=(1, 28, 28)))
    cloud.name = edge.name
    x, y = quadrants(40, (1, 28, 28))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_data(str(tmp_path / "d.npz"), loaded)
    profile = Profile.from_dict(profile_pipeline(edge, ProfileSettings(threads=1, repeats=2, max_seconds=0.01,
                                                                       payload_samples=4), progress=False, data=data))
    server = CloudServer(CloudHandler(cloud), port=0)
    port = server.start_in_thread()
    try:
        with EdgeClient(edge, profile, profile, cloud=f"127.0.0.1:{port}") as client:
            with pytest.raises(MismatchError, match="weights"):
                client.run(data.raw[:2])
    finally:
        server.stop_thread()


def test_accuracy_cache_is_keyed_by_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANNER_CACHE", str(tmp_path / "cache"))
    x, y = quadrants(40, (1, 28, 28))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    tables = []
    for k in (0, 1):  # same architecture and name, weights that always answer class k
        model = um.inception()
        with torch.no_grad():
            model.fc.bias[k] += 1000.0
        loaded = load_model(model, input_shape=(1, 28, 28))
        pipe = SplitPipeline.from_model(loaded)
        tables.append(accuracy_table(pipe, [], data=load_data(str(tmp_path / "d.npz"), loaded)))
    assert [t["backbone"] for t in tables] == [100.0 * np.mean(y == 0), 100.0 * np.mean(y == 1)]
    assert tables[0]["weights_sha256"] != tables[1]["weights_sha256"]


def test_planner_run_takes_an_nn_module(tmp_path):
    import planner

    loaded = load_model(um.inception(), input_shape=(1, 28, 28))
    x, y = quadrants(30, (1, 28, 28))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_data(str(tmp_path / "d.npz"), loaded)
    profile = Profile.from_dict(profile_pipeline(SplitPipeline.from_model(loaded), ProfileSettings(
        threads=1, repeats=2, max_seconds=0.01, payload_samples=4), progress=False, data=data))
    report = planner.run(data.raw[:3], model=um.inception(), cloud=f"127.0.0.1:{_closed_port()}",
                         edge_profile=profile, cloud_profile=profile, labels=data.labels[:3], timeout=0.5)
    assert len(report.answered) == 3 and report.model == "InceptionNet"
    with pytest.raises(planner.ProfileError) as e:
        planner.run(data.raw[:1], model=um.mobile_se(), edge_profile=profile, cloud_profile=profile)
    assert len(str(e.value)) < 300 and "MobileSE" in str(e.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
