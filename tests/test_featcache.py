import numpy as np
import pytest
import torch
import user_models as um

from planner.compress import featcache
from planner.compress.backbone import Backbone, calibrate_scales
from planner.compress.featcache import adapt_batch, choose_rows, open_or_build
from planner.compress.train import TrainConfig, train


@pytest.fixture()
def toy():
    torch.manual_seed(0)
    backbone = Backbone(um.Toy(), torch.zeros(1, 1, 28, 28))
    x = torch.randn(300, 1, 28, 28, generator=torch.Generator().manual_seed(0)).cumsum(3) / 5
    return backbone, x


def test_cache_matches_the_backbone_and_is_reused(toy, tmp_path, monkeypatch):
    backbone, x = toy
    cache = open_or_build(backbone, x, tmp_path)
    assert cache.n == 300 and set(cache.feats) == set(backbone.cut_ids)
    rows = np.array([3, 7, 250])  # cached rows are training images in a seeded random order
    assert sorted(cache.rows.tolist()) == list(range(300))
    logits, feats = backbone.features(x[torch.from_numpy(cache.rows[rows])])
    assert torch.allclose(cache.teacher(rows), logits, atol=1e-5)
    for cut in backbone.cut_ids:
        got, want = cache.feature(cut, rows), feats[cut]
        assert got.dtype == torch.float32 and torch.allclose(got, want, rtol=2e-3, atol=2e-3)

    def fail(*a, **k):
        raise AssertionError("rebuilt a cache that exists")

    monkeypatch.setattr(featcache, "_build", fail)
    again = open_or_build(backbone, x, tmp_path)
    assert again.key == cache.key and isinstance(again.feats[backbone.cut_ids[0]], np.memmap)


def test_any_change_of_model_data_or_cuts_is_another_key(toy, tmp_path):
    backbone, x = toy
    key = open_or_build(backbone, x, tmp_path).key
    x2 = x.clone()
    x2[5, 0, 3, 3] += 1.0
    assert open_or_build(backbone, x2, tmp_path).key != key  # one pixel
    fewer = Backbone(backbone.model, torch.zeros(1, 1, 28, 28), backbone.cut_ids[:2])
    assert open_or_build(fewer, x, tmp_path).key != key  # other cuts
    with torch.no_grad():
        backbone.model.fc.bias[0] += 0.1  # other weights
    assert open_or_build(backbone, x, tmp_path).key != key
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 4


def test_a_tampered_or_partial_cache_is_not_read(toy, tmp_path):
    backbone, x = toy
    cache = open_or_build(backbone, x, tmp_path)
    meta = cache.root / "meta.json"
    meta.write_text(meta.read_text().replace('"n_rows": 300', '"n_rows": 299'))
    assert featcache._open(cache.root, featcache.describe_key(backbone, x, np.arange(300))) is None
    rebuilt = open_or_build(backbone, x, tmp_path)  # rebuilt over the bad one
    assert rebuilt.key == cache.key and rebuilt.n == 300
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_a_disk_budget_caches_a_seeded_subset(toy, tmp_path):
    backbone, x = toy
    per_image = sum(int(np.prod(c.shape)) for c in backbone.cuts) * 2
    cache = open_or_build(backbone, x, tmp_path, max_bytes=per_image * 100)
    assert cache.n == 100 and len(set(cache.rows.tolist())) == 100
    assert np.array_equal(cache.rows, choose_rows(300, per_image, per_image * 100))
    logits = backbone.features(x[torch.from_numpy(cache.rows[:4])])[0]
    assert torch.allclose(cache.teacher(np.arange(4)), logits, atol=1e-5)


def test_batches_adapt_to_the_memory_budget():
    assert adapt_batch(128, 1000, 1 << 30) == 128
    assert adapt_batch(128, 10 << 20, 160 << 20) == 16
    assert adapt_batch(128, 1 << 30, 1 << 20) == 4


def test_training_from_the_cache_lowers_the_loss_like_live(toy, tmp_path):
    from planner.compress.aeconfig import AEConfig
    from planner.compress.autoencoder import build_autoencoder

    backbone, x = toy
    y = backbone.features(x)[0].argmax(1)
    cache = open_or_build(backbone, x, tmp_path)
    cfg = TrainConfig(steps=30, batch_size=32, lr=5e-3, ce_weight=0.0, checkpoint_every=10**6)
    finals = []
    for source in (None, cache):
        torch.manual_seed(0)
        ae = build_autoencoder(AEConfig.for_cuts(backbone.cuts, latent=4, decoder_width=8, bits=(2, 8)))
        calibrate_scales(ae, backbone, x, count=256, cache=source)
        result = train(ae, backbone, x, y, cfg, progress=False, cache=source)
        finals.append(result.history[-1]["loss"] if result.history else None)
    live, cached = finals
    assert cached is not None and abs(cached - live) < 0.25 * live  # same recipe, float16 features
