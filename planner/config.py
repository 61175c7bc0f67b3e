"""Defaults that more than one layer relies on, each defined once with what it means.

Torch-free. The dataclass configs of each part keep their own documented defaults (`compress.train.TrainConfig`
for the training recipe, `compress.aeconfig.AEConfig` for the autoencoder's shape, `runtime.options.EdgeOptions`
for the edge client, `profile.measure.ProfileSettings` for the profiler); the values they share live here.
"""

from __future__ import annotations

DEFAULT_BITS: tuple[int, ...] = (2, 3, 4, 6, 8)  # bitwidths an autoencoder is trained, profiled and planned at
DEFAULT_LATENT: float = 0.5  # widest latent width per cut: channels (an integer >= 1) or a fraction (< 1) of the
# channels entering the encoder (C, or 4C after the 2x2 space-to-depth)
DEFAULT_WIDTHS: tuple[int, ...] = (4, 8, 16, 32)  # latent widths an autoencoder serves (each capped per cut)
ARCH_LATENT: float = 8  # latent channels architecture-only profiles assume (at reduction 4: a narrow width)
DEFAULT_INPUT_FORMATS: tuple[str, ...] = ("jpeg50", "jpeg75", "jpeg90", "jpeg95", "webp50", "webp75", "webp90")
# the lossy files a cloud-only request may send its image input as (profiled where Pillow has the codec)
DEFAULT_MAX_LOSS: float = 1.0  # accuracy budget of a plan, percentage points below the backbone
DEFAULT_PORT: int = 7000  # the cloud server's TCP port
DEFAULT_HOST: str = "127.0.0.1"  # the cloud server listens on loopback unless told otherwise
DEFAULT_CLOUD: str = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
DEFAULT_BACKOFF_S: float = 0.5  # first wait after the cloud failed, doubled per failure
DEFAULT_BACKOFF_MAX_S: float = 10.0  # the longest wait between tries of a failing cloud
DEFAULT_LINK: str = "10mbit"  # the edge's starting bandwidth estimate when nothing else is known
DEFAULT_RTT: str = "20ms"  # the round-trip time assumed when the link does not say
DEFAULT_TIMEOUT_S: float = 5.0  # the edge waits this long for a reply (stretched for large transfers)
DEFAULT_EXPLORE: float = 0.05  # share of requests probing the other side's best candidate
DEFAULT_MAX_FRAME: int = 64 * 2**20  # the largest request frame a server accepts
DEFAULT_MAX_REPLY: int = 16 * 2**20  # the largest reply a server sends and a client accepts
DEFAULT_MAX_BATCH: int = 64  # most inputs one request may carry
DEFAULT_READ_TIMEOUT_S: float = 10.0  # seconds a client has for a whole frame (and its HELLO)
DEFAULT_IDLE_TIMEOUT_S: float = 300.0  # seconds an idle connection is kept
DEFAULT_COMPUTE_TIMEOUT_S: float = 30.0  # seconds from a request's arrival to its answer
DEFAULT_MAX_CONNECTIONS: int = 256  # open connections a server keeps at most
DEFAULT_MAX_UNAUTHENTICATED: int = 32  # connections still in their TLS handshake or waiting for HELLO, at most
DEFAULT_BATCH_DELAY_MS: float = 2.0  # the cloud server's dynamic batching: wait this long for more requests (0: off)
DEFAULT_BATCH_MAX: int = 64  # most inputs in one dynamic batch (a request carrying more runs alone)
# the edge's power when a profile neither measured (RAPL) nor declared it (`planner profile --edge-power-w`):
# a phone-class SoC running one big core (active) and waiting with the screen off (idle); an assumption, marked so
DEFAULT_EDGE_ACTIVE_W: float = 2.0
DEFAULT_EDGE_IDLE_W: float = 0.3
CONFIDENT_P: float = 0.5  # without labels, agreement is scored on the samples whose unsplit top-1 probability is
# at least this (the others are coin flips any perturbation moves); plain agreement and top-5 containment beside it
BATCH_VALUES: int = 1 << 22  # input values in one inference batch (evaluate, accuracy, reference labels, BN
# recalibration): 500 Fashion-MNIST images, 27 crops of 3x224x224 (about 16 MB of float32 input)


def batch_for(input_shape, cap: int = 500, values: int = BATCH_VALUES) -> int:
    """A batch size that adapts to the per-sample input size: at most `cap`, at most `values` input values."""
    n = 1
    for d in input_shape:
        n *= int(d)
    return max(1, min(int(cap), values // max(n, 1)))
