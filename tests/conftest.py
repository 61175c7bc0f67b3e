import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:  # CI machines are small and shared: a slow example is not a failure, a wrong one is
    from hypothesis import settings

    settings.register_profile("planner", deadline=None)
    settings.load_profile("planner")
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    """Tests share a 2-core machine; one thread keeps timing-insensitive tests predictable."""
    try:
        import torch
    except ImportError:  # planning-only environments
        return
    torch.set_num_threads(1)
