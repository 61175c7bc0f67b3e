"""Write the golden payloads of tests/test_codec.py: run once per format version, then never again.

    .venv/bin/python tests/data/codec/make_golden.py

Each case is built from a formula (no RNG), encoded, written as NAME.bin, and described in golden.json
(the header fields and the SHA-256 of the decoded array in little-endian bytes). A later format version
adds files beside these; it must not rewrite them, because decoding them is what the test checks: cases whose
file exists are skipped. Version 2 (lossless "ans") adds an entropy-coded case; its model's counts are in
golden.json ("entropy_counts", per channel and symbol) so the test rebuilds the same model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from planner.compress import codec

HERE = Path(__file__).parent


def _codes(shape: tuple[int, ...], bits: int, step: int = 7) -> np.ndarray:
    n = int(np.prod(shape))
    values = (np.arange(n) * step) % (1 << bits)
    values[::3] = 0  # some runs of zeros, as after a ReLU, so that zlib has something to find
    return values.astype(np.uint8).reshape(shape)


def ans_model():
    """The entropy model of the "ans" golden case: counts from a formula (4 channels x 16 symbols)."""
    from planner.compress.entropy import EntropyModel

    counts = 1 + (np.arange(4)[:, None] + 1) * (16 - np.abs(np.arange(16)[None, :] - 5)) % 23
    return EntropyModel("layer3.relu", 4, 4, counts)


def cases() -> dict[str, tuple[np.ndarray, dict]]:
    ramp = np.linspace(-3.5, 7.25, 48, dtype=np.float32).reshape(1, 3, 4, 4)
    image = ((np.arange(28)[:, None] * 9 + np.arange(28)[None, :] * 3) % 256).astype(np.uint8)
    image[:, :6] = 0
    return {
        "codes_b4_zlib": (_codes((1, 8, 7, 7), 4), dict(cut="layer2.1.relu_1", bits=4, lossless="zlib")),
        "codes_b3_scale_none": (_codes((2, 5, 3), 3, step=3),
                                dict(cut="relu_3", bits=3, scale=0.125, zero_point=2.5, lossless="none")),
        "codes_b1_none": (_codes((17,), 1, step=1), dict(cut="flatten", bits=1, lossless="none")),
        "codes_b8_zlib": (_codes((1, 4, 4, 4), 8, step=37), dict(cut="block5_0", bits=8, lossless="zlib")),
        "codes_b6_utf8_5d": (_codes((1, 2, 3, 4, 5), 6, step=11),
                             dict(cut="tête.1/ß", bits=6, zero_point=31.0, lossless="none")),
        "codes_b2_zstd": (_codes((1, 16, 7, 7), 2), dict(cut="add_2", bits=2, lossless="zstd")),
        "float32_none": (ramp, dict(cut="add_1", lossless="none")),
        "float16_zlib": (np.tile(ramp[:, :, :3, :3], (1, 6, 1, 1)).astype(np.float16),
                         dict(cut="pool3", lossless="zlib")),
        "uint8_input_zlib": (image.reshape(1, 1, 28, 28), dict(cut="input", lossless="zlib")),
        "codes_b4_ans_v2": (np.minimum(_codes((1, 4, 5, 6), 4, step=5), 9),
                            dict(cut="layer3.relu", bits=4, lossless="ans", entropy=ans_model())),
    }


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(array.astype(array.dtype.newbyteorder("<")).tobytes()).hexdigest()


def main() -> None:
    index_file = HERE / "golden.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    for name, (array, kwargs) in cases().items():
        if (HERE / f"{name}.bin").exists() and name in index:
            continue  # written by an earlier version: never rewritten
        data = codec.encode(array, **kwargs)
        (HERE / f"{name}.bin").write_bytes(data)
        head = codec.read_header(data)
        model = kwargs.get("entropy")
        index[name] = {
            "version": head.version, "mode": head.mode, "bits": head.bits, "lossless": head.lossless,
            "cut": head.cut, "shape": list(head.shape), "scale": head.scale, "zero_point": head.zero_point,
            "bytes": len(data), "sha256": digest(codec.decode(data, entropy=model).array),
        }
        if model is not None:
            index[name]["entropy_counts"] = model.counts.tolist()
    (HERE / "golden.json").write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(index)} golden payloads to {HERE}")


if __name__ == "__main__":
    main()
