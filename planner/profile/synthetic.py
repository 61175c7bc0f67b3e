"""Synthetic profiles: plausible, seeded, torch-free stand-ins for measured ones (tests, notebooks, benchmarks).

The shapes and sizes mimic a small VGG on 28x28 inputs; compute is split along the cuts at random, payloads
shrink with fewer bits and accuracy loss grows. `synthetic_pair(seed)` gives an edge and a cloud profile of the
same (synthetic) model and autoencoder: same payloads and accuracies, each side's own timings only.
"""

from __future__ import annotations

import numpy as np

from planner.config import DEFAULT_BITS
from planner.profile.schema import BitsEntry, CutProfile, InputProfile, Profile, RawFormat
from planner.profile.timing import Timing

HEADER_BYTES = 32


def _timing(ms: float) -> Timing:
    return Timing(median=float(ms), iqr=0.05 * ms, n=30, p10=0.97 * ms, p90=1.06 * ms)


def _shape(i: int, n: int) -> tuple[int, ...]:
    if n >= 3 and i == n - 1:
        return (128,)
    stage = i * 4 // n
    return (16 * 2**stage, 28 >> stage, 28 >> stage)


def synthetic_profile(role: str = "both", *, seed: int = 0, n_cuts: int = 10, bits: tuple[int, ...] = DEFAULT_BITS,
                      whole_model_ms: float = 5.0, model: str = "synthetic", autoencoder: str | None = "synthetic-ae",
                      accuracy: bool = True, float16: bool = True) -> Profile:
    """One profile whose structure (shapes, bytes, accuracy) depends on `seed` only and timings on `whole_model_ms`.

    `role` "edge" leaves cloud-side timings (tail, decode, deserialize) null, "cloud" the edge-side ones.
    """
    rng = np.random.default_rng(seed)
    edge_side, cloud_side = role in ("edge", "both"), role in ("cloud", "both")

    def side(ms: float, on: bool) -> Timing | None:
        return _timing(ms) if on else None

    weights = rng.uniform(0.5, 2.0, n_cuts + 1)
    done = (np.cumsum(weights)[:-1] / weights.sum()).tolist()  # fraction of the model's compute before each cut
    backbone = float(rng.uniform(88.0, 93.0))
    cuts = []
    for i in range(n_cuts):
        shape = _shape(i, n_cuts)
        numel = int(np.prod(shape))
        latent = max(8, numel // int(rng.choice([8, 16, 32])))
        codec_ms = whole_model_ms * float(rng.uniform(0.01, 0.06))
        sensitivity = float(rng.uniform(0.3, 5.0))
        table = {}
        for b in bits:
            mean = HEADER_BYTES + latent * b / 8 * float(rng.uniform(0.6, 1.0))
            loss = sensitivity * 0.55 ** (b - 2)
            table[b] = BitsEntry(bytes_mean=mean, bytes_p95=mean * float(rng.uniform(1.0, 1.15)),
                                 encode_ms=side(codec_ms * (1 + 0.02 * b), edge_side),
                                 decode_ms=side(codec_ms * float(rng.uniform(0.8, 1.2)), cloud_side),
                                 accuracy=backbone - loss if accuracy else None)
        raw = {}
        for dtype, size in (("float32", 4), ("float16", 2))[: 2 if float16 else 1]:
            nbytes = numel * size + HEADER_BYTES
            serialize = whole_model_ms * 0.002 + nbytes * 2e-6 * whole_model_ms / 5.0
            acc = (backbone - float(rng.uniform(0.0, 0.02)) if accuracy else None) if dtype == "float16" else None
            raw[dtype] = RawFormat(bytes=nbytes, serialize_ms=side(serialize, edge_side),
                                   deserialize_ms=side(serialize, cloud_side), accuracy=acc)
        cuts.append(CutProfile(id=f"cut{i}", index=i + 1, shape=shape, float32_bytes=numel * 4,
                               head_ms=side(whole_model_ms * done[i], edge_side),
                               tail_ms=side(whole_model_ms * (1 - done[i]), cloud_side), raw=raw, bits=table))
    compressed = 784 * float(rng.uniform(0.55, 0.8))
    io_ms = 0.004 * whole_model_ms
    return Profile(
        model=model, autoencoder=autoencoder, role=role,
        device={"cpu": "synthetic", "physical_cores": None, "logical_cores": None, "threads": 1, "freq_mhz": None,
                "memory_gb": None, "os": None, "torch": None, "gpu": None, "cpu_quota": None},
        settings={"batch": 1, "repeats": 30, "device": "cpu", "seed": seed},
        backbone_accuracy=backbone if accuracy else None, bits=tuple(bits),
        input=InputProfile(shape=(1, 28, 28), raw_bytes=784, compressed_bytes=compressed,
                           encode_ms=side(io_ms, edge_side), decode_ms=side(io_ms, cloud_side)),
        whole_model_ms=_timing(whole_model_ms), reply_bytes=48, cuts=tuple(cuts),
        notes=f"synthetic profile (seed {seed}), not a measurement")


def synthetic_pair(seed: int = 0, *, edge_ms: float = 50.0, cloud_ms: float = 1.0, **kwargs) -> tuple[Profile, Profile]:
    """(edge, cloud) profiles of one synthetic model: the whole model takes `edge_ms` / `cloud_ms` on each side."""
    return (synthetic_profile("edge", seed=seed, whole_model_ms=edge_ms, **kwargs),
            synthetic_profile("cloud", seed=seed, whole_model_ms=cloud_ms, **kwargs))
