"""Feature codec throughput and payload size next to torch.save and numpy.tobytes, and its share of head time.

    .venv/bin/python benchmarks/codec_bench.py [--repeats 31] [--json out.json]

A 1x64x14x14 float32 feature (the output of a conv-BN-ReLU head on a Fashion-MNIST test image) goes
through each path, timed in one run as the median over repeats of a loop, on one thread:
- codec b bits: min-max quantize to b-bit codes (scale/zero point in the header), encode; decode, map back
  to float32 (`values()`), with the lossless stage off ("none") and on ("auto"); plus pack+unpack alone;
- codec float32 / float16: the raw feature through the codec;
- torch.save to bytes / torch.load(weights_only=True), numpy tobytes / frombuffer.
MB/s counts the float32 input (50,176 bytes) per second. Then the codec's share of the head compute time
at batch 1: for that conv head, and for every cut of the zoo models (trained weights if present, else
untrained: same compute), codec time of the cut's own feature at 4 bits versus the head's forward time.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from planner.compress import bitpack, codec
from planner.extras import available

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402

SHAPE = (1, 64, 14, 14)
CUT = "layer2.1.relu_1"


def timeit(fn, repeats: int, budget_s: float = 0.01) -> float:
    return median_seconds(fn, repeats, budget_s)


def quantize(x: np.ndarray, bits: int) -> tuple[np.ndarray, float, float]:
    """Min-max uniform quantization: x ~ (code - zero_point) * scale."""
    lo, hi = float(x.min()), float(x.max())
    scale = (hi - lo) / ((1 << bits) - 1) or 1.0
    zero_point = -lo / scale
    return np.rint((x - lo) / scale).astype(np.uint8), scale, zero_point


def conv_head() -> nn.Module:
    """A representative edge head: 1x28x28 -> conv-BN-ReLU stack -> 64x14x14."""
    def block(cin, cout, stride=1):
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    torch.manual_seed(0)
    return nn.Sequential(*block(1, 32), *block(32, 64, 2), *block(64, 64)).eval()


def sample_image() -> tuple[torch.Tensor, str]:
    try:
        from planner.data import load_arrays, normalize

        images, _ = load_arrays("test")
        return normalize(images[:1]), "Fashion-MNIST test image 0"
    except Exception as e:  # noqa: BLE001 - the benchmark still runs on noise, and says so
        return torch.rand(1, 1, 28, 28), f"uniform noise (no dataset: {e})"


def codec_paths(x: np.ndarray, repeats: int) -> list[dict]:
    """One row per path: encode/decode seconds and payload bytes."""
    rows = []

    def add(name, enc, dec, nbytes):
        rows.append({"path": name, "encode_s": timeit(enc, repeats), "decode_s": timeit(dec, repeats),
                     "bytes": nbytes})

    for bits in (2, 4, 8):
        codes, scale, zero_point = quantize(x, bits)
        packed = bitpack.pack(codes, bits)
        add(f"pack / unpack {bits}-bit", lambda c=codes, b=bits: bitpack.pack(c, b),
            lambda p=packed, b=bits: bitpack.unpack(p, b, x.size), len(packed))
        for lossless in ("none", "auto"):
            data = codec.encode(codes, CUT, bits, scale=scale, zero_point=zero_point, lossless=lossless)
            used = f" ({codec.read_header(data).lossless})" if lossless == "auto" else ""
            add(f"codec {bits}-bit {lossless}{used}",
                partial(codec.encode, codes, CUT, bits, scale=scale, zero_point=zero_point, lossless=lossless),
                partial(codec.decode, data), len(data))
        feature = codec.decode(codec.encode(codes, CUT, bits, scale=scale, zero_point=zero_point))
        add(f"(quantize / dequantize {bits}-bit, not codec)", lambda b=bits: quantize(x, b), feature.values, 0)
    for mode in ("float32", "float16"):
        data = codec.encode(x, CUT, mode=mode, lossless="none")
        add(f"codec {mode} none", lambda m=mode: codec.encode(x, CUT, mode=m, lossless="none"),
            lambda d=data: codec.decode(d), len(data))
    tensor = torch.from_numpy(x)

    def save():
        buf = io.BytesIO()
        torch.save(tensor, buf)
        return buf.getvalue()

    saved = save()
    add("torch.save / torch.load", save, lambda: torch.load(io.BytesIO(saved), weights_only=True), len(saved))
    raw = x.tobytes()
    add("numpy tobytes / frombuffer", x.tobytes, lambda: np.frombuffer(raw, np.float32).reshape(SHAPE), len(raw))
    return rows


def lossless_levels(x: np.ndarray, repeats: int) -> list[dict]:
    """Payload bytes and codec encode/decode time per lossless stage and level, b-bit codes of the feature."""
    rows = []
    stages = [("none", None), ("zlib", 1), ("zlib", 6), ("zlib", 9)]
    if available("zstd"):
        stages += [("zstd", 1), ("zstd", 3), ("zstd", 9)]
    for bits in (2, 4, 8):
        codes, _, _ = quantize(x, bits)
        for stage, level in stages:
            data = codec.encode(codes, CUT, bits, lossless=stage, level=level)
            rows.append({"bits": bits, "stage": stage, "level": level, "bytes": len(data),
                         "encode_s": timeit(lambda c=codes, b=bits, s=stage, v=level: codec.encode(
                             c, CUT, b, lossless=s, level=v), repeats),
                         "decode_s": timeit(lambda d=data: codec.decode(d), repeats)})
    return rows


def codec_time(feature: np.ndarray, repeats: int, lossless: str) -> float:
    """Seconds to encode and decode the 4-bit codes of a feature (quantization not included)."""
    codes, _, _ = quantize(feature, 4)
    data = codec.encode(codes, "cut", 4, lossless=lossless)
    return timeit(lambda: codec.encode(codes, "cut", 4, lossless=lossless), repeats) + timeit(
        lambda: codec.decode(data), repeats)


def head_share(image: torch.Tensor, repeats: int) -> tuple[list[dict], str]:
    """Per cut: head time at batch 1 and the codec's encode+decode time of that cut's feature at 4 bits."""
    rows = []

    def add(model, cut, head_net):
        with torch.no_grad():
            feature = head_net(image).numpy()
            rows.append({"model": model, "cut": cut, "shape": list(feature.shape[1:]),
                         "head_s": timeit(lambda: head_net(image), repeats),
                         "codec_none_s": codec_time(feature, repeats, "none"),
                         "codec_auto_s": codec_time(feature, repeats, "auto")})

    add("conv head (representative)", "-", conv_head())
    try:
        from planner import zoo
        from planner.partition import Partitioner
    except ImportError as e:
        return rows, f"zoo not available ({e}): only the representative head is timed"
    note = "zoo weights: "
    for name in zoo.names():
        try:
            model, _ = zoo.load(name)
            weights = "trained"
        except Exception:  # noqa: BLE001 - no weights yet: the compute is the same
            model, weights = zoo.build(name).eval(), "untrained"
        parts = Partitioner(model, image)
        for cut in parts.cuts:
            if not cut.trivial and len(cut.shape) == 3:
                add(f"{name} ({weights})", cut.id, parts.split(cut)[0])
        note += f"{name} {weights}; "
    return rows, note


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    image, source = sample_image()
    with torch.no_grad():
        x = np.ascontiguousarray(conv_head()(image).numpy())
    assert x.shape == SHAPE
    mb = x.nbytes / 1e6
    print(f"feature {SHAPE} float32 ({x.nbytes} bytes) from {source}; torch {torch.__version__}, 1 thread, "
          f"median of {args.repeats}; MB/s of float32 input\n")
    print("| path | encode MB/s | decode MB/s | enc+dec MB/s | encode us | decode us | payload bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    paths = codec_paths(x, args.repeats)
    for r in paths:
        e, d = r["encode_s"], r["decode_s"]
        print(f"| {r['path']} | {mb / e:.0f} | {mb / d:.0f} | {mb / (e + d):.0f} | {e * 1e6:.1f} | {d * 1e6:.1f} "
              f"| {r['bytes'] or '-'} |")
    levels = lossless_levels(x, args.repeats)
    print("\nLossless stage and level (codec encode/decode of the b-bit codes):\n")
    print("| bits | stage | level | payload bytes | encode us | decode us |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in levels:
        print(f"| {r['bits']} | {r['stage']} | {r['level'] or '-'} | {r['bytes']} | {r['encode_s'] * 1e6:.1f} "
              f"| {r['decode_s'] * 1e6:.1f} |")
    share, note = head_share(image, args.repeats)
    print(f"\nCodec encode+decode of the cut's own feature as 4-bit codes (quantization excluded) vs the head's "
          f"forward at batch 1; {note}\n")
    print("| model | cut | feature | head us | codec us (none) | share | codec us (auto) | share |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in share:
        h, n, a = r["head_s"], r["codec_none_s"], r["codec_auto_s"]
        print(f"| {r['model']} | {r['cut']} | {'x'.join(map(str, r['shape']))} | {h * 1e6:.0f} | {n * 1e6:.0f} "
              f"| {100 * n / h:.1f}% | {a * 1e6:.0f} | {100 * a / h:.1f}% |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"shape": SHAPE, "source": source, "paths": paths, "lossless": levels, "head_share": share,
                       "note": note}, f, indent=1)


if __name__ == "__main__":
    main()
