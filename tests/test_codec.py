"""The feature codec: round trips, the documented layout, golden payloads, hardening and a 20,000-input fuzz."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import math
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import planner
from planner.compress import codec
from planner.errors import CodecError

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "data" / "codec"
CUT = "layer2.1.relu_1"


def _load_script(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fuzz = _load_script(ROOT / "scripts" / "fuzz_codec.py", "fuzz_codec")


def with_crc(buf: bytes | bytearray) -> bytes:
    buf = bytearray(buf)
    fuzz.fix_crc(buf)
    return bytes(buf)


def header(mode=0, bits=4, lossless=0, flags=0, shape=(1, 4), cut=b"c", raw_len=None, stored_len=None,
           version=codec.VERSION, magic=codec.MAGIC) -> bytes:
    """A hand-built header (the layout of docs/codec.md) with a zero CRC."""
    count = math.prod(shape)
    raw_len = (count * bits + 7) // 8 if raw_len is None else raw_len
    stored_len = raw_len if stored_len is None else stored_len
    return (struct.pack("<4sBBBBBBBBIII", magic, version, mode, bits, lossless, flags, len(shape), len(cut), 0, 0,
                        raw_len, stored_len) + struct.pack(f"<{len(shape)}I", *shape) + cut)


# ---------------------------------------------------------------- round trips (property tests)

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6)
cuts = st.text(min_size=1, max_size=20)  # at most 80 bytes of UTF-8
stages = st.sampled_from(["none", "zlib", "auto"])


@st.composite
def code_arrays(draw):
    bits = draw(st.integers(1, 8))
    dtype = draw(st.sampled_from([np.uint8, np.int64, np.int32, np.uint16]))
    array = draw(hnp.arrays(dtype, shapes, elements=st.integers(0, (1 << bits) - 1)))
    return array, bits


@given(code_arrays(), cuts, stages, st.none() | st.floats(1e-3, 10), st.none() | st.floats(-100, 100))
def test_codes_round_trip(case, cut, lossless, scale, zero_point):
    array, bits = case
    data = codec.encode(array, cut, bits, scale=scale, zero_point=zero_point, lossless=lossless)
    got = codec.decode(data)
    assert (got.mode, got.bits, got.cut, got.shape) == ("codes", bits, cut, array.shape)
    assert got.array.dtype == np.uint8 and np.array_equal(got.array, array)
    assert got.scale == (None if scale is None else pytest.approx(scale, rel=1e-6))
    assert got.zero_point == (None if zero_point is None else pytest.approx(zero_point, rel=1e-6, abs=1e-30))
    plain = codec.encode(array, cut, bits, scale=scale, zero_point=zero_point, lossless="none")
    assert len(plain) == codec.payload_size(array.shape, bits, cut, scale=scale is not None,
                                            zero_point=zero_point is not None)
    if lossless == "auto":
        assert len(data) <= len(plain)


@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.float16]), shapes,
                  elements=st.floats(allow_nan=True, allow_infinity=True, width=16)),
       st.sampled_from(["float32", "float16"]), stages)
def test_raw_float_round_trip_is_bit_exact(array, mode, lossless):
    data = codec.encode(array, "add_1", mode=mode, lossless=lossless)
    got = codec.decode(data)
    expected = array.astype(np.float32 if mode == "float32" else np.float16)
    assert (got.mode, got.bits, got.shape, got.array.dtype) == (mode, None, array.shape, expected.dtype)
    assert got.array.tobytes() == expected.tobytes()
    assert len(codec.encode(array, "add_1", mode=mode, lossless="none")) == codec.payload_size(
        array.shape, None, "add_1", mode=mode)


@given(hnp.arrays(np.uint8, shapes), stages)
def test_uint8_input_round_trip(array, lossless):
    got = codec.decode(codec.encode(array, "input", lossless=lossless))
    assert (got.mode, got.bits) == ("uint8", None)
    assert np.array_equal(got.array, array)


@pytest.mark.extra
@settings(max_examples=20)
@given(code_arrays())
def test_zstd_round_trip(case):
    pytest.importorskip("zstandard")
    array, bits = case
    data = codec.encode(array, CUT, bits, lossless="zstd")
    assert codec.read_header(data).lossless == "zstd"
    assert np.array_equal(codec.decode(data).array, array)


def test_torch_tensors_in_and_out():
    torch = pytest.importorskip("torch")
    feature = torch.randn(2, 8, 7, 7)
    got = codec.decode(codec.encode(feature, "relu_5"))
    assert got.mode == "float32" and torch.equal(got.tensor(), feature)
    codes = torch.randint(0, 8, (1, 4, 3, 3), dtype=torch.uint8)
    assert torch.equal(codec.decode(codec.encode(codes, "relu_5", 3)).tensor(), codes)
    half = codec.decode(codec.encode(feature.requires_grad_(), "relu_5", mode="float16"))
    assert half.tensor().dtype == torch.float16


def test_values_dequantize():
    codes = np.array([[0, 1, 2, 3]], np.uint8)
    unit = codec.decode(codec.encode(codes, CUT, 2)).values()
    assert unit.dtype == np.float32 and np.allclose(unit, [[0, 1 / 3, 2 / 3, 1]])
    affine = codec.decode(codec.encode(codes, CUT, 2, scale=0.5, zero_point=1.0)).values()
    assert np.allclose(affine, [[-0.5, 0, 0.5, 1.0]])


def test_auto_keeps_zlib_only_when_smaller():
    zeros = np.zeros((1, 64, 14, 14), np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (1, 64, 14, 14), dtype=np.uint8)
    assert codec.read_header(codec.encode(zeros, CUT, 4)).lossless in ("zlib", "zstd")
    assert codec.read_header(codec.encode(noise, CUT, 8)).lossless == "none"
    assert codec.read_header(codec.encode(noise, CUT, 8, lossless="zlib")).lossless == "zlib"


def test_header_and_payload_size():
    shape = (1, 64, 14, 14)
    assert codec.header_size(CUT, 4) == 24 + 16 + len(CUT)
    assert codec.payload_size(shape, 4, CUT) == codec.header_size(CUT, 4) + 64 * 14 * 14 // 2
    assert codec.payload_size(shape, 3, CUT, scale=True) == codec.header_size(CUT, 4) + 4 + math.ceil(12544 * 3 / 8)
    assert codec.payload_size((1, 1, 28, 28), None, "input", mode="uint8") == codec.header_size("input", 4) + 784
    for bits in range(1, 9):
        data = codec.encode(np.ones(shape, np.uint8), CUT, bits, lossless="none")
        assert len(data) == codec.payload_size(shape, bits, CUT)
    with pytest.raises(CodecError, match="takes no bits"):
        codec.payload_size(shape, 4, CUT, mode="float32")


def test_layout_matches_docs():
    """The bytes of a small message, field by field as in docs/codec.md."""
    data = codec.encode(np.array([[1, 2, 3]], np.uint8), "ab", 2, scale=0.5, lossless="none")
    expected = header(bits=2, flags=codec.FLAG_SCALE, shape=(1, 3), cut=b"ab") + struct.pack("<f", 0.5) + b"\x6c"
    assert data == with_crc(expected)
    assert struct.unpack_from("<I", data, 12)[0] == zlib.crc32(data[16:], zlib.crc32(data[:12]))
    assert "PLFC" in (ROOT / "docs" / "codec.md").read_text()


# ---------------------------------------------------------------- golden payloads

GOLDEN_INDEX = json.loads((GOLDEN / "golden.json").read_text())


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.extra) if meta["lossless"] == "zstd" else name
                                  for name, meta in sorted(GOLDEN_INDEX.items())])
def test_golden_payloads_still_decode(name):
    meta = GOLDEN_INDEX[name]
    if meta["lossless"] == "zstd":
        pytest.importorskip("zstandard")
    data = (GOLDEN / f"{name}.bin").read_bytes()
    assert len(data) == meta["bytes"]
    model = None
    if "entropy_counts" in meta:  # version 2: an ANS payload, decoded with the model the index describes
        from planner.compress.entropy import EntropyModel

        model = EntropyModel(meta["cut"], meta["shape"][1], meta["bits"], np.array(meta["entropy_counts"]))
        with pytest.raises(CodecError, match="given no entropy models"):
            codec.decode(data)
    got = codec.decode(data, entropy=model)
    assert codec.read_header(data).version == meta["version"]
    fields = ("mode", "bits", "lossless", "cut", "shape", "scale", "zero_point")
    assert {k: getattr(got, k) for k in fields} == {**{k: meta[k] for k in fields}, "shape": tuple(meta["shape"])}
    canonical = got.array.astype(got.array.dtype.newbyteorder("<")).tobytes()
    assert hashlib.sha256(canonical).hexdigest() == meta["sha256"]
    again = codec.encode(got.array, got.cut, got.bits, mode=got.mode, scale=got.scale, zero_point=got.zero_point,
                         lossless=meta["lossless"], entropy=model)
    if meta["lossless"] in ("none", "ans"):  # no third-party compressor state: the encoder writes the same bytes
        assert again == data
    assert np.array_equal(codec.decode(again, entropy=model).array, got.array)


def test_golden_covers_every_mode():
    assert {m["mode"] for m in GOLDEN_INDEX.values()} == set(codec.MODES)
    # the lossy image stages have no golden bytes: their pixels depend on the libjpeg/libwebp build (they are
    # covered by tests/test_input_formats.py)
    assert {m["lossless"] for m in GOLDEN_INDEX.values()} == set(codec.LOSSLESS) - set(codec.IMAGE_STAGES)


# ---------------------------------------------------------------- encode refusals


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(x=np.array([0, 4]), bits=2), r"outside \[0, 3\]"),
    (dict(x=np.array([-1, 0]), bits=2), "outside"),
    (dict(x=np.array([0.0, 1.0]), bits=2), "codes must be integers"),
    (dict(x=np.array([1, 2], np.uint8), bits=9), "bits must be"),
    (dict(x=np.array([1, 2], np.uint8), bits=2, mode="float32"), "takes no bits"),
    (dict(x=np.array([1, 2], np.uint8), mode="codes"), "needs bits"),
    (dict(x=np.array([1, 2], np.int64)), "cannot infer the mode"),
    (dict(x=np.array([1, 2], np.int64), mode="float16"), "floating-point"),
    (dict(x=np.array([1.5]), mode="uint8"), "codes must be integers"),
    (dict(x=np.array([300]), mode="uint8"), "outside"),
    (dict(x=np.array([1.0]), mode="bf16"), "unknown mode"),
    (dict(x=np.float32(1.0)), "1..8 dims"),
    (dict(x=np.zeros((1,) * 9, np.float32)), "1..8 dims"),
    (dict(x=np.zeros((1, 0), np.float32)), "no empty features"),
    (dict(x=np.zeros(2, np.float32), cut=""), "non-empty string"),
    (dict(x=np.zeros(2, np.float32), cut="x" * 256), "more than 255"),
    (dict(x=np.zeros(2, np.float32), cut="\ud800"), "UTF-8"),
    (dict(x=np.zeros(2, np.float32), scale=1.0), "codes' only"),
    (dict(x=np.zeros(2, np.uint8), bits=2, scale=0.0), "non-zero"),
    (dict(x=np.zeros(2, np.uint8), bits=2, scale=1e40), "float32"),
    (dict(x=np.zeros(2, np.uint8), bits=2, zero_point=float("nan")), "finite"),
    (dict(x=np.zeros(2, np.uint8), bits=2, lossless="lz4"), "unknown lossless"),
    (dict(x=np.zeros(2, np.uint8), bits=2, lossless="zlib", level=99), "level 99"),
    (dict(x=np.array(["a"])), "cannot infer"),
])
def test_encode_refuses(kwargs, match):
    kwargs = {"cut": CUT, **kwargs}
    with pytest.raises(CodecError, match=match):
        codec.encode(kwargs.pop("x"), **kwargs)


def test_cut_of_255_utf8_bytes_is_fine():
    cut = "é" * 127 + "a"  # 255 bytes
    assert codec.decode(codec.encode(np.zeros(3, np.uint8), cut, 1)).cut == cut


def test_zstd_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(CodecError, match=r"planner\[zstd\]"):
        codec.encode(np.zeros(4, np.uint8), CUT, 2, lossless="zstd")
    assert codec.read_header(codec.encode(np.zeros(400, np.uint8), CUT, 2)).lossless == "zlib"
    golden = (GOLDEN / "codes_b2_zstd.bin").read_bytes()
    with pytest.raises(CodecError, match=r"planner\[zstd\]"):
        codec.decode(golden)


# ---------------------------------------------------------------- decode hardening

ONE = zlib.compress(b"\x00")
TWO = zlib.compress(b"\x00\x00")
VALID = codec.encode(np.arange(24, dtype=np.uint8).reshape(2, 3, 4) % 16, CUT, 4, scale=0.25, lossless="none")


@pytest.mark.parametrize(("data", "match"), [
    (b"", "truncated"),
    (VALID[:23], "truncated"),
    (VALID[:30], "truncated"),
    (VALID[:-1], "truncated"),
    (VALID + b"\x00", "1 trailing bytes"),
    (b"XXXX" + VALID[4:], "wrong magic"),
    (with_crc(VALID[:4] + b"\x09" + VALID[5:]), "unsupported format version 9"),
    (VALID[:-1] + bytes([VALID[-1] ^ 0x10]), "checksum mismatch"),
    (with_crc(header(mode=7)), "unknown mode"),
    (with_crc(header(lossless=len(codec.LOSSLESS))), "unknown lossless"),
    (with_crc(header(lossless=4)), "needs mode 'uint8', a quality"),
    (with_crc(header(lossless=3)), "only they, are version 2"),
    (with_crc(header(version=2, lossless=1)), "only they, are version 2"),
    (with_crc(header(version=2, lossless=3, mode=1, bits=0)), "only codes are entropy-coded"),
    (with_crc(header(flags=0x08)), "reserved"),
    (with_crc(header(bits=0)), "expected 1..8"),
    (with_crc(header(bits=9)), "expected 1..8"),
    (with_crc(header(mode=1, bits=4)), "both must be 0"),
    (with_crc(header(shape=())), "declared 0 dims"),
    (with_crc(header(shape=(1,) * 9)), "declared 9 dims"),
    (with_crc(header(cut=b"")), "empty cut"),
    (with_crc(header(shape=(1, 0), raw_len=0) + b""), "empty dim"),
    (with_crc(header(cut=b"\xff\xfe") + b"\x00\x00"), "not valid UTF-8"),
    (with_crc(header(raw_len=3) + b"\x00\x00\x00"), "declared raw length 3"),
    (with_crc(header(stored_len=3) + b"\x00\x00\x00"), "3 stored bytes"),
    (with_crc(header(flags=1) + struct.pack("<f", float("inf")) + b"\x00\x00"), "scale must be finite"),
    (with_crc(header(flags=1) + struct.pack("<f", 0.0) + b"\x00\x00"), "non-zero"),
    (with_crc(header(bits=3, shape=(1, 3)) + b"\x01\x01"), "padding"),
    (with_crc(header(mode=1, bits=0, shape=(2**32 - 1,) * 8, raw_len=0)), "above the cap"),
    (with_crc(header(lossless=1, stored_len=5) + b"\x00" * 5), "zlib payload does not inflate"),
    (with_crc(header(lossless=1, stored_len=4) + zlib.compress(b"\x00\x00")[:4]), "truncated"),
    (with_crc(header(lossless=1, stored_len=len(ONE)) + ONE), "inflates to 1 bytes"),
    (with_crc(header(lossless=1, stored_len=len(TWO) + 2) + TWO + b"\x00\x00"), "stray bytes"),
    ("not bytes", "needs bytes"),
    (np.frombuffer(VALID, np.uint8), "needs bytes"),
])
def test_decode_refuses(data, match):
    with pytest.raises(CodecError, match=match):
        codec.decode(data)


def test_decode_accepts_bytearray_and_memoryview():
    assert codec.decode(bytearray(VALID)).cut == CUT
    assert codec.decode(memoryview(VALID)).shape == (2, 3, 4)


def test_cap_is_configurable():
    feature = codec.encode(np.zeros((1, 64, 14, 14), np.float32), CUT, lossless="none")
    with pytest.raises(CodecError, match="above the cap of 50000"):
        codec.decode(feature, max_decoded_bytes=50_000)
    assert codec.decode(feature, max_decoded_bytes=64 * 14 * 14 * 4).shape == (1, 64, 14, 14)
    with pytest.raises(CodecError, match="max_decoded_bytes"):
        codec.decode(feature, max_decoded_bytes=0)


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_zlib_bomb_is_refused_without_inflating_it():
    bomb = zlib.compress(b"\x00" * 50_000_000, 9)  # 50 MB of zeros in ~50 kB
    data = with_crc(header(mode=1, bits=0, lossless=1, shape=(1, 1000), raw_len=4000, stored_len=len(bomb)) + bomb)

    def decode():
        with pytest.raises(CodecError, match="beyond the declared raw length 4000"):
            codec.decode(data)

    assert _peak_bytes(decode) < 2_000_000


@pytest.mark.extra
def test_zstd_bombs_are_refused_without_inflating_them():
    zstd = pytest.importorskip("zstandard")
    declared = zstd.ZstdCompressor().compress(b"\x00" * 50_000_000)
    silent = zstd.ZstdCompressor(write_content_size=False).compress(b"\x00" * 50_000_000)
    for bomb, match in ((declared, "frame declares 50000000"), (silent, "does not decompress")):
        data = with_crc(header(mode=3, bits=0, lossless=2, shape=(4000,), raw_len=4000, stored_len=len(bomb)) + bomb)

        def decode(data=data, match=match):
            with pytest.raises(CodecError, match=match):
                codec.decode(data)

        assert _peak_bytes(decode) < 2_000_000


def test_huge_declared_shape_allocates_nothing():
    data = with_crc(header(mode=1, bits=0, shape=(60_000, 60_000), raw_len=4 * 60_000 * 60_000 % 2**32))
    assert _peak_bytes(lambda: pytest.raises(CodecError, codec.decode, data)) < 100_000


def test_fuzz_20000_mutated_payloads_raise_only_codec_error():
    tally = fuzz.run_random(20_000, seed=12345)
    assert sum(tally.values()) == 20_000
    # the mutations reach every layer of checks, not just the first one
    for kind in ("ok", "checksum", "truncated", "trailing", "magic", "version", "cap", "raw length", "zlib"):
        assert tally[kind] > 0, (kind, tally)


# ---------------------------------------------------------------- packaging


def test_codec_imports_without_torch_and_never_unpickles():
    code = "import sys, planner.compress.codec, planner; planner.DecodedFeature; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    imported = set()
    for name in ("codec.py", "bitpack.py", "imagecoding.py"):
        tree = ast.parse((ROOT / "planner" / "compress" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module)
    assert not imported & {"pickle", "marshal", "dill", "cloudpickle", "joblib"}
    assert imported <= {"__future__", "math", "struct", "zlib", "dataclasses", "typing", "numpy", "torch",
                        "zstandard", "planner.errors", "planner.extras", "planner.types",
                        "planner.compress.bitpack", "planner.compress", "io", "warnings", "PIL"}, imported


def test_decoded_feature_is_public():
    assert planner.DecodedFeature is codec.DecodedFeature


def test_raw_quantizer_flag_round_trips_and_is_codes_only():
    codes = np.arange(24, dtype=np.uint8).reshape(1, 2, 3, 4) % 8
    data = codec.encode(codes, "relu_5", 3, coder_flag=codec.FLAG_RAWQUANT)
    dec = codec.decode(data)
    assert dec.coder_flag == codec.FLAG_RAWQUANT and dec.mode == "codes" and np.array_equal(dec.array, codes)
    assert not codec.decode(codec.encode(codes, "relu_5", 3)).coder_flag
    assert len(data) == len(codec.encode(codes, "relu_5", 3))  # a flag, no extra bytes
    with pytest.raises(CodecError, match="a coder flag applies to mode 'codes' only"):
        codec.encode(codes.astype(np.float32), "relu_5", coder_flag=codec.FLAG_RAWQUANT)


# ---------------------------------------------------------------- entropy coding (lossless "ans", version 2)


def _model(codes, cut=CUT, bits=4):
    from planner.compress.entropy import EntropyModel

    return EntropyModel.fit(codes, cut, bits)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 3), st.integers(1, 5), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_ans_round_trip_any_shape_and_bits(bits, n, c, side, seed):
    rng = np.random.default_rng(seed)
    fit = rng.integers(0, 1 << bits, size=(8, c, side, side)).astype(np.uint8)
    codes = rng.integers(0, 1 << bits, size=(n, c, side, side)).astype(np.uint8)  # symbols unseen in fitting too
    model = _model(fit, bits=bits)
    data = codec.encode(codes, CUT, bits, lossless="ans", entropy=model)
    head = codec.read_header(data)
    assert head.version == codec.ENTROPY_VERSION and head.lossless == "ans" and head.entropy_tag == model.tag
    assert np.array_equal(codec.decode(data, entropy=model).array, codes)


def test_ans_beats_zlib_on_skewed_codes_and_auto_picks_it():
    rng = np.random.default_rng(0)
    codes = np.clip(rng.normal(3, 1.5, size=(200, 16, 7, 7)).round(), 0, 15).astype(np.uint8)
    model = _model(codes[:150])
    one = codes[150:151]
    ans = codec.encode(one, CUT, 4, lossless="ans", entropy=model)
    zl = codec.encode(one, CUT, 4, lossless="zlib")
    assert len(ans) < 0.9 * len(zl)
    auto = codec.encode(one, CUT, 4, entropy=model)
    assert auto == ans and codec.encode(one, CUT, 4) == codec.encode(one, CUT, 4, lossless="auto")
    assert codec.read_header(codec.encode(one, CUT, 4)).version == 1  # without a model: the first format


def test_ans_payload_refused_without_its_model():
    from planner.compress.entropy import Books, EntropyBook

    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, size=(1, 3, 5, 5)).astype(np.uint8)
    model, other = _model(codes, bits=2), _model(codes[:, :, :4], bits=2, cut="elsewhere")
    data = codec.encode(codes, CUT, 2, lossless="ans", entropy=model)
    with pytest.raises(CodecError, match="given no entropy models"):
        codec.decode(data)
    with pytest.raises(CodecError, match="does not hold"):
        codec.decode(data, entropy=Books(EntropyBook([other])))
    assert np.array_equal(codec.decode(data, entropy=Books(None, EntropyBook([other, model]))).array, codes)
    with pytest.raises(CodecError, match="needs the entropy model"):
        codec.encode(codes, CUT, 2, lossless="ans")
    with pytest.raises(CodecError, match="is for 2-bit codes"):
        codec.encode(codes, CUT, 3, lossless="ans", entropy=model)
    with pytest.raises(CodecError, match="3 channels"):
        codec.encode(codes[:, :2], CUT, 2, lossless="ans", entropy=model)
    with pytest.raises(CodecError, match="mode 'codes' only"):
        codec.encode(codes.astype(np.float32), CUT, lossless="ans", entropy=model)


def test_corrupted_ans_words_are_refused():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 16, size=(1, 4, 6, 6)).astype(np.uint8)
    model = _model(codes)
    data = bytearray(codec.encode(codes, CUT, 4, lossless="ans", entropy=model))
    head = codec.read_header(bytes(data))
    for mutated in (data[:-4], data + b"\x01\x00\x00\x00", data[:-1]):
        buf = bytearray(mutated)
        struct.pack_into("<I", buf, 20, len(buf) - head.header_len)  # the stored length follows the cut
        with pytest.raises(CodecError):
            codec.decode(with_crc(buf), entropy=model)


def test_auto_never_makes_a_payload_larger_with_a_model():
    rng = np.random.default_rng(3)
    for bits in (1, 2, 4, 8):
        fit = rng.integers(0, 1 << bits, size=(64, 3, 4, 4)).astype(np.uint8)  # uniform: ANS gains ~nothing
        model = _model(fit, bits=bits)
        for i in range(8):
            one = fit[i:i + 1]
            assert len(codec.encode(one, CUT, bits, entropy=model)) <= len(codec.encode(one, CUT, bits))
