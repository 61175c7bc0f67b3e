"""Edge energy and cloud cost of a candidate: the power models behind `--objective energy|cost`.

Per request, for a candidate that uses the cloud (mJ; W x ms = mJ, mW x s = mJ):

    compute = P_active * edge_ms                                  (head + encode; the input's encoding for
                                                                   cloud-only; the whole model for edge-only)
    radio   = alpha_up * payload_Mbit + alpha_down * reply_Mbit + beta * (uplink_s + reply_s)
              [+ P_tail * (min(rtt + cloud, T_tail) + T_tail) with the tail on]
    idle    = P_idle * (transfer_ms + cloud_ms)                   (the edge waits: wire, RTT, the cloud's part)

Edge-only has only the compute part. The radio part is the data-transfer power model of Huang et al.,
"A Close Examination of Performance and Power Characteristics of 4G LTE Networks", MobiSys 2012 (Table 4):
power = alpha_u * uplink Mbit/s + alpha_d * downlink Mbit/s + beta while sending/receiving, so that a
transfer of N Mbit over t seconds costs alpha * N + beta * t whatever the rate does during it (exact on a
trace too). The tail (their Table 3: the radio stays in a high-power state after the last packet; LTE's is
11.6 s) is off by default, since back-to-back requests share it. The constants are overridable
(`lte:beta=1200,tail_ms=5000`).

Every part is affine in transfer time, so on a constant link energy is affine in 1 / bandwidth (exact
breakpoints, like latency). Cost per request = cloud compute seconds (decode + tail, or the whole model for
cloud-only) x the price per hour / 3600 + (payload + reply bytes) x the price per GB / 1e9.

Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from planner.errors import SolveError
from planner.profile.power import EdgePower, profile_power


def _check(name: str, v: object, what: str = "a finite number >= 0") -> None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise SolveError(f"{name} must be {what}, got {v!r}")


@dataclass(frozen=True)
class RadioModel:
    """A link type's radio power: mW per Mbit/s up and down, base mW while transferring, tail mW and ms."""

    name: str
    alpha_up: float  # mW per Mbit/s of uplink throughput
    alpha_down: float  # mW per Mbit/s of downlink throughput
    beta: float  # mW while transferring
    tail_mw: float = 0.0  # power of the high-power tail after the last packet
    tail_ms: float = 0.0  # its length

    def __post_init__(self) -> None:
        for name in ("alpha_up", "alpha_down", "beta", "tail_mw", "tail_ms"):
            _check(f"radio {self.name} {name}", getattr(self, name))

    def to_dict(self) -> dict:
        return {"name": self.name, "alpha_up": self.alpha_up, "alpha_down": self.alpha_down, "beta": self.beta,
                "tail_mw": self.tail_mw, "tail_ms": self.tail_ms}


# Huang et al., MobiSys 2012: Table 4 (alpha_u, alpha_d, beta) and Table 3 (tail power and time: LTE tail,
# 3G DCH tail, WiFi tail)
RADIOS: dict[str, RadioModel] = {
    "lte": RadioModel("lte", 438.39, 51.97, 1288.04, 1060.0, 11576.0),
    "3g": RadioModel("3g", 868.98, 122.12, 817.88, 803.9, 8088.2),
    "wifi": RadioModel("wifi", 283.17, 137.01, 132.86, 119.3, 238.1),
}
_OVERRIDABLE = ("alpha_up", "alpha_down", "beta", "tail_mw", "tail_ms")


def parse_radio(text: str | RadioModel) -> RadioModel:
    """'lte', '3g', 'wifi', or one with overrides: 'lte:beta=1200,alpha_up=400,tail_ms=5000'."""
    if isinstance(text, RadioModel):
        return text
    name, _, rest = str(text).strip().partition(":")
    base = RADIOS.get(name.lower().replace("-", ""))
    if base is None:
        raise SolveError(f"unknown link type {name!r}: use one of {', '.join(RADIOS)} (optionally with overrides, "
                         f"e.g. lte:beta=1200,alpha_up=400)")
    changes: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in _OVERRIDABLE:
            raise SolveError(f"link type {text!r}: {item!r} is not KEY=VALUE with KEY one of {', '.join(_OVERRIDABLE)}")
        try:
            changes[key.strip()] = float(value)
        except ValueError:
            raise SolveError(f"link type {text!r}: {value!r} is not a number") from None
    return replace(base, **changes)


@dataclass(frozen=True)
class EnergyModel:
    """How a plan's edge energy is computed: the link's radio, the tail on or off, the edge's power (None:
    what the edge profile records, else the assumed default)."""

    radio: RadioModel | str = "lte"
    tail: bool = False
    power: EdgePower | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "radio", parse_radio(self.radio))
        if self.power is not None and not isinstance(self.power, EdgePower):
            raise SolveError(f"power must be an EdgePower (planner.profile.power), got {self.power!r}")
        if not isinstance(self.tail, bool):
            raise SolveError(f"tail must be True or False, got {self.tail!r}")

    def power_of(self, edge_profile) -> EdgePower:
        return self.power if self.power is not None else profile_power(edge_profile)

    def parts(self, power: EdgePower, remote: np.ndarray, payload_bytes: np.ndarray, reply_bytes: float,
              edge_ms, transfer_ms, cloud_ms, rtt_ms: float) -> tuple:
        """(compute, radio, idle) in mJ per candidate; the time arguments broadcast (a trace's starts)."""
        r = self.radio
        on = remote if np.ndim(transfer_ms) == 1 else remote[:, None]
        compute = power.active_w * np.asarray(edge_ms, dtype=float)
        wire_s = np.maximum(np.asarray(transfer_ms, dtype=float) - rtt_ms, 0.0) / 1e3
        data = r.alpha_up * payload_bytes * 8e-6 + r.alpha_down * reply_bytes * 8e-6
        data = data if np.ndim(transfer_ms) == 1 else data[:, None]
        radio = data + r.beta * wire_s
        if self.tail:
            gap = np.minimum(rtt_ms + np.asarray(cloud_ms, dtype=float), r.tail_ms)
            radio = radio + r.tail_mw * (gap + r.tail_ms) / 1e3
        idle = power.idle_w * (np.asarray(transfer_ms, dtype=float) + np.asarray(cloud_ms, dtype=float))
        return compute, np.where(on, radio, 0.0), np.where(on, idle, 0.0)

    def describe(self, power: EdgePower) -> dict:
        return {"radio": self.radio.to_dict(), "tail": self.tail, "edge_power": power.to_dict()}


@dataclass(frozen=True)
class CloudPrice:
    """The price of the cloud's compute per CPU/GPU-hour and, optionally, of the bytes per GB."""

    per_hour: float
    per_gb: float = 0.0
    currency: str = field(default="$")

    def __post_init__(self) -> None:
        _check("the cloud price per hour", self.per_hour)
        _check("the price per GB", self.per_gb)

    def cost(self, remote: np.ndarray, cloud_compute_ms: np.ndarray, payload_bytes: np.ndarray,
             reply_bytes: float) -> np.ndarray:
        """Per candidate: cloud seconds x price / 3600 + bytes x price per GB (0 for edge-only)."""
        c = cloud_compute_ms / 3.6e6 * self.per_hour + (payload_bytes + reply_bytes) / 1e9 * self.per_gb
        return np.where(remote, c, 0.0)

    def to_dict(self) -> dict:
        return {"per_hour": self.per_hour, "per_gb": self.per_gb, "currency": self.currency}


def request_energy(model: EnergyModel, power: EdgePower, result, rtt_ms: float) -> float:
    """The edge energy (mJ) of one executed request, from what it measured: compute over its edge and encode time,
    the radio over its bytes and its time on the wire (the exchange less the RTT), idle for the rest."""
    remote = bool(result.spec.remote) and not result.fallback and result.error is None
    edge = result.edge_ms + result.encode_ms
    transfer = result.transfer_ms if remote else 0.0
    parts = model.parts(power, np.array([remote]), np.array([float(result.request_bytes)]),
                        float(result.reply_bytes), np.array([edge]), np.array([transfer]),
                        np.array([max(result.measured_ms - edge - transfer, 0.0)]), rtt_ms)
    idle = power.idle_w * max(result.measured_ms - edge, 0.0) if result.fallback else 0.0  # the failed exchange
    return float(sum(p[0] for p in parts)) + idle


def sig(x: float, digits: int = 6) -> float:
    """A float rounded to `digits` significant digits (costs are tiny: fixed decimals would round them to 0)."""
    return float(f"{float(x):.{digits}g}")
