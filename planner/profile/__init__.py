"""Profiles: what a device measured for a model + autoencoder (schema, synthetic profiles for tests).

Importing this package never imports torch: the solver plans from profile files alone. The measuring side
(device facts, timing, CPU quota) lives in its own modules and imports torch only where it runs models.
"""

from planner.profile.compat import check_compatible
from planner.profile.schema import (
    SCHEMA_VERSION,
    BitsEntry,
    CutProfile,
    InputProfile,
    Profile,
    RawFormat,
    load_profile,
)
from planner.profile.timing import Timing

__all__ = ["SCHEMA_VERSION", "BitsEntry", "CutProfile", "InputProfile", "Profile", "RawFormat", "Timing",
           "check_compatible", "load_profile"]
