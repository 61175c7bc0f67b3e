"""Write the small synthetic bandwidth traces shipped in planner/traces/ (deterministic; re-run to regenerate).

Rate traces use the same `seconds<TAB>Mbit/s` format as the real ones (each sample: the throughput since the
previous time stamp); `step_drop.mahimahi` is the step trace as Mahimahi delivery opportunities (ms stamps).
The rates sit in the region where splitting can pay (0.05-1 Mbit/s, see DESIGN.md "Where splitting pays").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "planner" / "traces"
PACKET_BITS = 1500 * 8


def steady(seconds: int = 60) -> np.ndarray:
    """0.5 Mbit/s throughout."""
    return np.full(seconds, 0.5)


def step_drop(seconds: int = 60) -> np.ndarray:
    """1 Mbit/s, dropping to 0.1 Mbit/s for the second half."""
    return np.where(np.arange(seconds) < seconds // 2, 1.0, 0.1)


def fluctuating(seconds: int = 120, seed: int = 0) -> np.ndarray:
    """A log-normal random walk around 0.3 Mbit/s, clipped to 0.02-3 Mbit/s."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0.0, 0.25, seconds))
    walk -= np.linspace(0.0, walk[-1], seconds)  # end where it started so the trace wraps smoothly
    return np.clip(0.3 * np.exp(walk), 0.02, 3.0)


def outage(seconds: int = 60) -> np.ndarray:
    """0.5 Mbit/s with a 3 s outage (0 Mbit/s) every 20 s."""
    return np.where(np.arange(seconds) % 20 >= 17, 0.0, 0.5)


def write_rates(path: Path, mbps: np.ndarray) -> None:
    lines = [f"{t:.1f}\t{r:.6f}" for t, r in zip(np.arange(1, mbps.size + 1, dtype=float), mbps, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def write_mahimahi(path: Path, mbps: np.ndarray) -> None:
    """One line per 1500-byte opportunity, spread evenly over each 1 s sample (integer ms)."""
    stamps: list[int] = []
    for second, rate in enumerate(mbps):
        count = int(round(rate * 1e6 / PACKET_BITS))
        stamps += [int(second * 1000 + (k + 1) * 1000 // count) for k in range(count)]
    path.write_text("\n".join(map(str, stamps)) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fn in (("steady", steady), ("step_drop", step_drop), ("fluctuating", fluctuating), ("outage", outage)):
        write_rates(args.out / f"{name}.tsv", fn())
    write_mahimahi(args.out / "step_drop.mahimahi", step_drop())
    print(f"wrote synthetic traces to {args.out}")


if __name__ == "__main__":
    main()
