"""Static entropy models: fitted per (cut, width, bits), shipped in the autoencoder / raw-quantizer files, and
used by the codec's "ans" stage wherever codes cross (the pipeline, the profiler)."""

import numpy as np
import pytest
import torch

from planner.compress import codec
from planner.compress.aeconfig import AEConfig
from planner.compress.aefile import load_autoencoder_file, save_autoencoder
from planner.compress.autoencoder import build_autoencoder
from planner.compress.clipquant import RawQuantizer
from planner.compress.entropy import Books, EntropyBook, EntropyModel, model_for
from planner.errors import CodecError


def _features(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"a": torch.relu(torch.randn(n, 8, 14, 14, generator=gen)), "b": torch.randn(n, 16, 7, 7, generator=gen)}


@pytest.fixture(scope="module")
def ae():
    torch.manual_seed(0)
    ae = build_autoencoder(AEConfig.for_cuts([("a", (8, 14, 14)), ("b", (16, 7, 7))], latent=8, widths=(4,),
                                             decoder_width=8, bits=(2, 4)))
    ae.calibrate(_features())
    ae.eval().fit_entropy(_features())
    return ae


def test_a_model_per_cut_width_and_bits(ae):
    assert len(ae.entropy) == sum(len(ae.widths(c)) for c in ae.cuts) * len(ae.bits)
    with torch.inference_mode():
        codes = ae.encode(_features(4, seed=1)["a"], "a", 4, 4).numpy()
    model = model_for(ae, "a", codes, 4)
    assert model.channels == 4 and model.bits == 4 and model.counts.shape == (4, 16)
    assert model_for(object(), "a", codes, 4) is None  # a coder without entropy models: the codec uses zlib


def test_models_travel_in_the_autoencoder_file(ae, tmp_path):
    save_autoencoder(ae, tmp_path / "ae.pt")
    again = load_autoencoder_file(tmp_path / "ae.pt")
    assert sorted(m.tag for m in again.entropy) == sorted(m.tag for m in ae.entropy)
    with torch.inference_mode():
        codes = ae.encode(_features(2, seed=2)["b"], "b", 2).numpy()
    data = codec.encode(codes, "b", 2, lossless="ans", entropy=model_for(ae, "b", codes, 2))
    assert np.array_equal(codec.decode(data, entropy=Books(again.entropy)).array, codes)


def test_an_autoencoder_file_without_models_still_loads(ae, tmp_path):
    bare = build_autoencoder(ae.config)
    save_autoencoder(bare, tmp_path / "old.pt")
    assert len(load_autoencoder_file(tmp_path / "old.pt").entropy) == 0


def test_raw_quantizer_ships_its_models(tmp_path):
    feats = _features()
    q = RawQuantizer.calibrate(feats, (2, 8))
    q.fit_entropy(feats)
    assert len(q.entropy) == 4
    q.save(tmp_path / "q.json")
    again = RawQuantizer.load(tmp_path / "q.json")
    codes = q.encode(feats["a"][:1], "a", 8).numpy()
    m1, m2 = model_for(q, "a", codes, 8), model_for(again, "a", codes, 8)
    assert m1.tag == m2.tag and np.array_equal(m1.counts, m2.counts)
    data = codec.encode(codes, "a", 8, coder_flag=codec.FLAG_RAWQUANT, entropy=m1)
    assert codec.read_header(data).lossless == "ans"  # skewed post-ReLU codes: ANS is the smallest
    assert np.array_equal(codec.decode(data, entropy=Books(again.entropy)).array, codes)


def test_book_state_round_trip_and_bad_tables():
    m = EntropyModel("x@y", 5, 3, np.ones((5, 8), np.int64))
    book = EntropyBook.from_state(EntropyBook([m]).to_state())
    assert book.get("x@y", 5, 3).tag == m.tag and book.by_tag(m.tag) is not None
    with pytest.raises(CodecError, match="all >= 1"):
        EntropyModel("x", 2, 2, np.zeros((2, 4)))
    with pytest.raises(CodecError, match="shape"):
        EntropyModel("x", 2, 2, np.ones((2, 5)))
