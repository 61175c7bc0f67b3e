"""planner: decide where to cut a DNN between edge and cloud, how hard to compress the feature, and run it.

The public API is re-exported here and imported lazily, so that planning from profile files
(`planner.solve`, `planner.link`) never pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from planner.errors import (
    CodecError,
    CompressError,
    DataError,
    LinkError,
    MismatchError,
    PartitionError,
    PlannerError,
    ProfileError,
    SolveError,
    ZooError,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    # partition
    "Cut": "planner.partition",
    "cuts": "planner.partition",
    "split": "planner.partition",
    # data
    "load_fashion_mnist": "planner.data",
    # zoo
    "zoo": "planner.zoo",
    # compress
    "DecodedFeature": "planner.compress.codec",
    "SharedAutoencoder": "planner.compress.autoencoder",
    "load_autoencoder": "planner.compress.zoo",
    # profiles, links, solver (torch-free)
    "Profile": "planner.profile.schema",
    "load_profile": "planner.profile.schema",
    "profile_arch": "planner.profile.arch",
    "ArchSettings": "planner.profile.arch",
    "Plan": "planner.solution",
    # vocabulary, defaults, extras (torch-free)
    "Role": "planner.types",
    "AutoencoderKind": "planner.types",
    "CandidateKind": "planner.types",
    "CandidateSpec": "planner.types",
    "available": "planner.extras",
    "require": "planner.extras",
    "MissingExtra": "planner.extras",
    "Candidate": "planner.candidates",
    "plan": "planner.solve",  # planner.solve.solve (`planner.solve` is the module)
    "solve_trace": "planner.solve",
    "breakpoints": "planner.solve",
    "parse_assume_loss": "planner.candidates",
    "find_profiles": "planner.profile.store",
    "load_pair": "planner.profile.store",
    "ProfileKey": "planner.profile.store",
    "ends_crossing": "planner.solve",
    "write_report": "planner.report",
    "ReportOptions": "planner.report",
    "parse_bandwidth": "planner.link",
    "parse_duration": "planner.link",
    "ConstantLink": "planner.link",
    "TraceLink": "planner.link",
    "LiveEstimate": "planner.link",
    # objectives beyond latency (torch-free): docs/energy.md
    "Goal": "planner.objectives",
    "EnergyModel": "planner.energy",
    "CloudPrice": "planner.energy",
    "EdgePower": "planner.profile.power",
    # runtime (transport)
    "CloudServer": "planner.runtime.server",
    "CloudClient": "planner.runtime.client",
    "CloudUnavailable": "planner.runtime.client",
    "BadReply": "planner.runtime.client",
    "Shaper": "planner.runtime.shaper",
    # runtime (edge side)
    "run": "planner.runtime.edge",
    "EdgeClient": "planner.runtime.edge",
    "RunReport": "planner.runtime.results",
    "Result": "planner.runtime.results",
    "EdgeOptions": "planner.runtime.options",
    "ServerOptions": "planner.runtime.options",
    "OptionError": "planner.rules",
    # ONNX export and ONNX Runtime (the [onnx] extra, imported on first use)
    "export_pipeline": "planner.execution.onnx_export",
    "OnnxPipeline": "planner.execution.onnx_runtime",
}

__all__ = [
    "CodecError",
    "CompressError",
    "DataError",
    "LinkError",
    "MismatchError",
    "PartitionError",
    "PlannerError",
    "ProfileError",
    "SolveError",
    "ZooError",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'planner' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from planner import zoo  # noqa: F401
    from planner.data import load_fashion_mnist  # noqa: F401
    from planner.partition import Cut, cuts, split  # noqa: F401
