import gzip
import shutil

import numpy as np
import pytest

from planner import DataError
from planner.data import DEFAULT_ROOT, as_loader, load_arrays, load_fashion_mnist, loader, read_idx

needs_data = pytest.mark.skipif(not DEFAULT_ROOT.exists(), reason="apt-get install dataset-fashion-mnist")


@needs_data
def test_real_splits_sizes_and_disjoint():
    tr_x, tr_y = load_arrays("train")
    va_x, va_y = load_arrays("val")
    te_x, te_y = load_arrays("test")
    assert tr_x.shape == (55000, 28, 28) and va_x.shape == (5000, 28, 28) and te_x.shape == (10000, 28, 28)
    assert tr_x.dtype == np.uint8 and set(np.unique(te_y)) == set(range(10))
    # validation is carved from train: together they are the 60,000 training images, no overlap
    full_x, _ = load_arrays("full-train")
    rows = {r.tobytes() for r in full_x[:2000]}
    assert len(rows & {r.tobytes() for r in va_x}) + len(rows & {r.tobytes() for r in tr_x}) >= 1990
    assert np.array_equal(load_arrays("val")[1], va_y)  # fixed seed: same split every time


@needs_data
def test_normalized_tensors_and_loader():
    ds = load_fashion_mnist("test")
    x, y = ds.tensors(limit=1000)
    assert tuple(x.shape) == (1000, 1, 28, 28) and abs(float(x.mean())) < 0.2 and 0.7 < float(x.std()) < 1.3
    batches = list(loader("test", batch_size=300, limit=1000))
    assert [len(b[1]) for b in batches] == [300, 300, 300, 100]
    img, label = ds[0]
    assert tuple(img.shape) == (1, 28, 28) and label == int(y[0])
    assert sum(len(b[1]) for b in as_loader((x, y), batch_size=256)) == 1000


def test_missing_files_name_the_package(tmp_path):
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_arrays("test", root=tmp_path)


def test_unknown_split():
    with pytest.raises(DataError, match="unknown split"):
        load_arrays("holdout")


def _write_idx(path, magic, dims, data, gz=True):
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + data
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_custom_root_uncompressed(tmp_path):
    imgs = np.arange(2 * 28 * 28, dtype=np.uint8).tobytes()
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", 0x803, (2, 28, 28), imgs, gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", 0x801, (2,), bytes([3, 7]), gz=False)
    x, y = load_arrays("test", root=tmp_path)
    assert x.shape == (2, 28, 28) and list(y) == [3, 7]


def test_wrong_magic_names_the_file(tmp_path):
    f = tmp_path / "bad.gz"
    _write_idx(f, 0x0999, (2,), b"ab")
    with pytest.raises(DataError, match=r"bad\.gz.*wrong magic"):
        read_idx(f, 0x801)


def test_truncated_data_names_the_file(tmp_path):
    f = tmp_path / "short.gz"
    _write_idx(f, 0x801, (10,), b"abc")
    with pytest.raises(DataError, match=r"short\.gz.*truncated"):
        read_idx(f, 0x801)


@needs_data
def test_truncated_gzip_copy_of_real_file(tmp_path):
    src = DEFAULT_ROOT / "t10k-labels-idx1-ubyte.gz"
    shutil.copy(src, tmp_path / "t10k-labels-idx1-ubyte.gz")
    shutil.copy(DEFAULT_ROOT / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-images-idx3-ubyte.gz")
    data = (tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_arrays("test", root=tmp_path)
