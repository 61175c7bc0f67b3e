"""Fuzz `planner.compress.codec.decode` with mutated valid payloads: anything but CodecError is a bug.

    nice -n 10 .venv/bin/python scripts/fuzz_codec.py --inputs 200000            # seeded random engine
    nice -n 10 .venv/bin/python scripts/fuzz_codec.py --engine hypothesis --inputs 200000

The corpus holds valid payloads of every mode, bitwidth and lossless stage. One input is a corpus payload
with 1-4 mutations (bit flips, boundary bytes, 32-bit header fields set to boundary values, truncation,
extension, insertion, deletion, splicing with another payload); in half of the inputs the CRC is then
recomputed so that the mutation reaches the checks behind the checksum. A decode that succeeds must give
an array of the declared shape within the size cap, which re-encodes to the same feature. Both engines
build inputs from the same integer tuples, so hypothesis can shrink a failure to a minimal mutation list.
tests/test_codec.py runs the random engine on 20,000 inputs.
"""

from __future__ import annotations

import argparse
import collections
import struct
import sys
import time
import zlib

import numpy as np

from planner.compress import codec
from planner.errors import CodecError
from planner.extras import available

CAP = 1 << 16  # decode cap used while fuzzing: mutated shapes beyond it must be refused, not allocated
OPS = 9
_BYTES = (0x00, 0x01, 0x02, 0x07, 0x08, 0x09, 0x7F, 0x80, 0xFE, 0xFF)
_WORDS = (0, 1, 2, 3, 7, 8, 255, 256, 4095, 4096, 65535, 65536, CAP, CAP + 1, 2**31 - 1, 2**31, 2**32 - 1)
# which error each message is about (first keyword found), to show that the fuzz reaches every check
_KINDS = ("checksum", "truncated", "trailing", "magic", "version", "cap", "raw length", "stored bytes",
          "zlib", "zstd", "padding", "utf-8", "scale", "zero_point", "reserved", "mode", "dims", "empty",
          "lossless", "bits", "ans", "entropy")


def corpus() -> list[bytes]:
    """Valid payloads over all modes, bitwidths 1..8 and lossless stages (small, so decoding is cheap)."""
    out = []
    stages = ["none", "zlib"] + (["zstd"] if available("zstd") else [])
    for bits in range(1, 9):
        for i, stage in enumerate(stages):
            shape = [(5, 7), (1, 3, 4, 4), (13,), (1, 2, 3, 2, 2)][(bits + i) % 4]
            n = int(np.prod(shape))
            codes = ((np.arange(n) * (2 * bits + 1)) % (1 << bits)).astype(np.uint8)
            codes[::2] = 0
            extra = {"scale": 0.5, "zero_point": 3.0} if bits % 3 == 0 else {}
            out.append(codec.encode(codes.reshape(shape), f"cut.{bits}", bits, lossless=stage, **extra))
    feature = np.linspace(-2, 2, 60, dtype=np.float32).reshape(1, 3, 4, 5)
    feature[:, 1] = 0
    for stage in stages:
        out.append(codec.encode(feature, "layer1.0.relu", lossless=stage))
        out.append(codec.encode(feature, "layer1.0.relu", mode="float16", lossless=stage))
        out.append(codec.encode((np.arange(100) % 7).astype(np.uint8).reshape(1, 1, 10, 10), "input", lossless=stage))
    out.append(codec.encode(np.zeros((2, 3), np.uint8), "ü", 8, lossless="auto"))
    for model in BOOK:  # version 2: entropy-coded codes
        shape = (2, model.channels, 3)
        codes = ((np.arange(int(np.prod(shape))) * 5) % (1 << model.bits)).astype(np.uint8).reshape(shape)
        out.append(codec.encode(codes, model.cut, model.bits, lossless="ans", entropy=model))
    return out


def _book():
    """Entropy models of the fuzz corpus (2, 4 and 8 bits), from formulas."""
    from planner.compress.entropy import EntropyBook, EntropyModel

    models = [EntropyModel(f"cut.{b}", 3, b, 1 + (np.arange(3)[:, None] * 7 + np.arange(1 << b)[None, :]) % 13)
              for b in (2, 4, 8)]
    return EntropyBook(models)


BOOK = _book()


def fix_crc(buf: bytearray) -> None:
    """Recompute the checksum of a (mutated) message in place, if it is long enough to hold one."""
    at = codec.CRC_OFFSET
    if len(buf) >= at + 4:
        struct.pack_into("<I", buf, at, zlib.crc32(buf[at + 4:], zlib.crc32(buf[:at])))


def apply_ops(seed: bytes, ops: list[tuple[int, int, int]], fix: bool, others: list[bytes]) -> bytes:
    """Mutate `seed` by each (op, a, b): a and b are arbitrary non-negative ints mapped onto the op's range."""
    buf = bytearray(seed)
    for op, a, b in ops:
        n = len(buf)
        head = min(n, 64) or 1
        if op == 0 and n:  # flip one bit, mostly in the header
            pos = a % head if b % 4 else a % n
            buf[pos] ^= 1 << (b % 8)
        elif op == 1 and n:  # a boundary or arbitrary byte value
            pos = a % head if b % 4 else a % n
            buf[pos] = _BYTES[b % len(_BYTES)] if b % 3 else (b >> 2) & 0xFF
        elif op == 2 and n >= 4:  # a 32-bit header field (crc, raw length, stored length, dims) set to a boundary
            pos = min((12 + 4 * (a % 8)), n - 4)
            value = _WORDS[b % len(_WORDS)] if b % 5 else (n + (b >> 3) % 9 - 4) % 2**32
            struct.pack_into("<I", buf, pos, value)
        elif op == 3:  # truncate
            del buf[a % (n + 1):]
        elif op == 4:  # append
            buf += bytes((a >> i) & 0xFF for i in range(0, 8 * (1 + b % 8), 8))[: 1 + b % 64]
        elif op == 5:  # insert a few bytes
            pos = a % (n + 1)
            buf[pos:pos] = bytes([b & 0xFF]) * (1 + (b >> 8) % 8)
        elif op == 6 and n:  # delete a range
            pos = a % n
            del buf[pos:pos + 1 + b % 16]
        elif op == 7:  # splice with another corpus payload
            other = others[b % len(others)]
            buf = buf[: a % (n + 1)] + other[(b >> 8) % (len(other) + 1):]
        elif op == 8 and n >= 12:  # a small header byte (version, mode, bits, lossless, flags, ndim, cut length)
            buf[4 + a % 8] = (b % 12) if b % 7 else 0xFF
    if fix:
        fix_crc(buf)
    return bytes(buf)


def kind(message: str) -> str:
    low = message.lower()
    return next((k for k in _KINDS if k in low), "other")


def check(data: bytes) -> str:
    """Decode one input: 'ok' or the kind of CodecError; any other exception propagates."""
    try:
        got = codec.decode(data, max_decoded_bytes=CAP, entropy=BOOK)
    except CodecError as e:
        return kind(str(e))
    if got.array.shape != got.shape or got.array.nbytes > CAP:
        raise AssertionError(f"decoded array {got.array.shape} does not match header {got.shape} or cap")
    again = codec.decode(codec.encode(got.array, got.cut, got.bits, mode=got.mode, scale=got.scale,
                                      zero_point=got.zero_point, lossless="none"))
    if again.array.tobytes() != got.array.tobytes():
        raise AssertionError("a decoded feature does not survive re-encoding")
    return "ok"


def random_inputs(count: int, seed: int, payloads: list[bytes]):
    """`count` (seed payload index, ops, fix_crc) tuples from a seeded numpy generator."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        k = int(rng.integers(1, 5))
        ops = [(int(o), int(a), int(b)) for o, a, b in zip(rng.integers(0, OPS, k), rng.integers(0, 2**32, k),
                                                           rng.integers(0, 2**32, k), strict=True)]
        yield int(rng.integers(len(payloads))), ops, bool(rng.integers(2))


def run_random(count: int, seed: int = 0) -> collections.Counter:
    """Decode `count` mutated inputs; return how many ended in each outcome (raises on any other exception)."""
    payloads = corpus()
    tally: collections.Counter = collections.Counter()
    for index, ops, fix in random_inputs(count, seed, payloads):
        data = apply_ops(payloads[index], ops, fix, payloads)
        try:
            tally[check(data)] += 1
        except Exception as e:
            raise AssertionError(f"decode raised {type(e).__name__}: {e} on input {data.hex()}") from e
    return tally


def run_hypothesis(count: int, seed: int) -> collections.Counter:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    payloads = corpus()
    tally: collections.Counter = collections.Counter()
    word = st.integers(0, 2**32 - 1)
    op = st.tuples(st.integers(0, OPS - 1), word, word)

    @hseed(seed)
    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(payloads) - 1), st.lists(op, min_size=1, max_size=4), st.booleans())
    def fuzz(index, ops, fix):
        tally[check(apply_ops(payloads[index], ops, fix, payloads))] += 1

    fuzz()
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=("random", "hypothesis"), default="random")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    tally = (run_random if args.engine == "random" else run_hypothesis)(args.inputs, args.seed)
    elapsed = time.perf_counter() - start
    print(f"{sum(tally.values())} inputs ({args.engine} engine, seed {args.seed}) in {elapsed:.0f} s: "
          "no exception other than CodecError")
    for name, n in tally.most_common():
        print(f"  {name:12s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
