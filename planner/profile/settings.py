"""How a profile is measured (`ProfileSettings`), torch-free so the CLI builds its flags from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.config import DEFAULT_INPUT_FORMATS
from planner.errors import ProfileError
from planner.rules import COUNT, Choice, Number, check_fields, rule
from planner.types import Role, parse_input_format

ROLES = tuple(r.value for r in Role)


@dataclass
class ProfileSettings:
    """How a profile is measured; defaults suit a 2-core machine in a few minutes. Checks itself when made."""

    role: str = field(default="both", metadata=rule(Choice(ROLES)))
    threads: int | None = field(default=None, metadata=rule(Number(1, integer=True, none=True)))
    # ^ default: 1 for an edge profile, all cores otherwise
    batch: int = field(default=1, metadata=rule(COUNT))
    repeats: int = field(default=7, metadata=rule(COUNT))  # minimum timed repeats per stage (more until the
    # spread is small or max_seconds)
    max_seconds: float = field(default=0.25, metadata=rule(Number(0, unit="seconds")))  # time cap per stage
    # (0: the minimum repeats only)
    device: str = "cpu"
    cpu_quota: float | None = field(default=None, metadata=rule(Number(0, 1, open_low=True, none=True)))
    # ^ fraction of one core for the edge side (needs root)
    payload_samples: int = field(default=200, metadata=rule(COUNT))  # real test images for payload byte statistics
    accuracy_limit: int | None = field(default=None, metadata=rule(Number(1, integer=True, none=True)))
    # ^ test images for accuracy (None = all 10,000; cached)
    float16: bool = False  # also profile the float16 raw feature (a candidate with ~0 accuracy loss)
    all_cuts: bool = False  # also the cuts that only repeat their neighbour (padding, dropout, identity, reshape)
    remeasure_accuracy: bool = False  # measure accuracy again (not from the cache or the autoencoder's card)
    save_accuracy: bool = False  # write the measured accuracy table into the autoencoder's card
    batch_sizes: tuple[int, ...] = ()  # cloud: also time decoder + tail at these batch sizes (dynamic batching)
    input_formats: tuple[str, ...] = DEFAULT_INPUT_FORMATS  # cloud-only as JPEG/WebP files (uint8 images only)

    def __post_init__(self) -> None:
        check_fields(self)
        self.input_formats = tuple(parse_input_format(f, ProfileError) for f in self.input_formats)
        for size in self.batch_sizes:
            COUNT.check("batch_sizes", size)
        if self.cpu_quota is not None and self.role != Role.EDGE:
            raise ProfileError("--cpu-quota emulates a weak edge device: use it with --role edge")
