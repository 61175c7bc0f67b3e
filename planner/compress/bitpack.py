"""Pack b-bit codes (b in 1..8) into a dense MSB-first bit stream and back, vectorized with numpy.

The stream is the codes written one after another, most significant bit first, the last byte padded
with zero bits: exactly `np.packbits` of each code's low b bits. Three vectorized paths give the same
bytes: b = 1 and 8 map to numpy directly; b = 2 and 4 put 8/b codes in one byte with uint8 shifts;
b = 3, 5, 6, 7 take eight codes (= b bytes) at a time as one big-endian 64-bit word and squeeze out
the unused high bits of every byte with three SWAR steps (8 -> 16 -> 32 -> 64-bit lanes).
"""

from __future__ import annotations

import numpy as np

from planner.errors import CodecError

_U8 = np.uint8
_U64 = np.uint64


def check_bits(bits: int) -> None:
    """Raise CodecError unless `bits` is an integer in 1..8."""
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= 8:
        raise CodecError(f"bits must be an integer in 1..8, got {bits!r}")


def packed_size(count: int, bits: int) -> int:
    """Bytes taken by `count` codes of `bits` bits: ceil(count * bits / 8)."""
    check_bits(bits)
    return (count * bits + 7) // 8


def _lanes(width: int, ones: int) -> np.uint64:
    """A 64-bit mask with the low `ones` bits set in every `width`-bit lane."""
    return _U64(sum(((1 << ones) - 1) << s for s in range(0, 64, width)))


def _padded(flat: np.ndarray, multiple: int) -> np.ndarray:
    if flat.size % multiple == 0:
        return flat
    out = np.zeros(-(-flat.size // multiple) * multiple, _U8)
    out[: flat.size] = flat
    return out


def pack(codes: np.ndarray, bits: int) -> bytes:
    """Pack uint8 codes (each < 2**bits, any shape, C order) into ceil(n*bits/8) bytes."""
    check_bits(bits)
    codes = np.asarray(codes)
    if codes.dtype != _U8:
        raise CodecError(f"pack needs uint8 codes, got dtype {codes.dtype}")
    flat = np.ascontiguousarray(codes).reshape(-1)
    n = flat.size
    if n == 0:
        return b""
    top = int(flat.max())
    if top >> bits:
        raise CodecError(f"code {top} does not fit in {bits} bits (max {(1 << bits) - 1})")
    if bits == 8:
        return flat.tobytes()
    if bits == 1:
        return np.packbits(flat).tobytes()
    if 8 % bits == 0:
        per = 8 // bits
        grid = _padded(flat, per).reshape(-1, per)
        acc = grid[:, 0] << _U8(8 - bits)
        for i in range(1, per):
            acc |= grid[:, i] << _U8(8 - bits * (i + 1))
        return acc.tobytes()
    v = _padded(flat, 8).view(">u8").astype(_U64)
    m = _lanes(16, 8)
    v = (((v >> _U64(8)) & m) << _U64(bits)) | (v & m)
    m = _lanes(32, 16)
    v = (((v >> _U64(16)) & m) << _U64(2 * bits)) | (v & m)
    v = ((v >> _U64(32)) << _U64(4 * bits)) | (v & _U64(0xFFFFFFFF))
    words = v.astype(">u8").view(_U8).reshape(-1, 8)[:, 8 - bits:]
    return np.ascontiguousarray(words).reshape(-1)[: packed_size(n, bits)].tobytes()


def unpack(buf: bytes | bytearray | memoryview, bits: int, count: int) -> np.ndarray:
    """Inverse of `pack`: a flat uint8 array of `count` codes; `buf` must be exactly packed_size long
    and its padding bits zero."""
    need = packed_size(count, bits)
    data = np.frombuffer(buf, _U8)
    if data.size != need:
        raise CodecError(f"packed codes: {data.size} bytes for {count} codes of {bits} bits, expected {need}")
    if count == 0:
        return np.zeros(0, _U8)
    pad = need * 8 - count * bits
    if pad and int(data[-1]) & ((1 << pad) - 1):
        raise CodecError("packed codes: the padding bits of the last byte are not zero")
    if bits == 8:
        return data.copy()
    if bits == 1:
        return np.unpackbits(data, count=count)
    if 8 % bits == 0:
        per = 8 // bits
        mask = _U8((1 << bits) - 1)
        out = np.empty((need, per), _U8)
        for i in range(per):
            out[:, i] = (data >> _U8(8 - bits * (i + 1))) & mask
        return out.reshape(-1)[:count]
    groups = -(-count // 8)
    grid = np.zeros((groups, 8), _U8)
    grid[:, 8 - bits:] = _padded(data, bits).reshape(groups, bits)
    v = grid.reshape(-1).view(">u8").astype(_U64)
    v = ((v >> _U64(4 * bits)) << _U64(32)) | (v & _U64((1 << (4 * bits)) - 1))
    m = _lanes(32, 2 * bits)
    v = (((v >> _U64(2 * bits)) & m) << _U64(16)) | (v & m)
    m = _lanes(16, bits)
    v = (((v >> _U64(bits)) & m) << _U64(8)) | (v & m)
    return v.astype(">u8").view(_U8)[:count]
