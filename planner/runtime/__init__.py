"""Runtime: the cloud server, the edge client, the wire protocol and the link shaper.

Import-light: names are loaded on first access, so `import planner.runtime` pulls in neither
asyncio servers nor numpy until they are used.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "CloudServer": "planner.runtime.server",
    "CloudClient": "planner.runtime.client",
    "CloudUnavailable": "planner.runtime.client",
    "ServerError": "planner.runtime.client",
    "Reply": "planner.runtime.client",
    "Shaper": "planner.runtime.shaper",
    "TokenBucket": "planner.runtime.shaper",
    "ProtocolError": "planner.runtime.protocol",
    "ErrorCode": "planner.runtime.protocol",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'planner.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
