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


@pytest.fixture(scope="session", autouse=True)
def _feature_cache_in_tmp(tmp_path_factory):
    """train-ae's feature caches (planner.compress.featcache) go to a session temp folder, not runs/ of the repo."""
    old = os.environ.get("PLANNER_FEATURE_CACHE")
    os.environ["PLANNER_FEATURE_CACHE"] = str(tmp_path_factory.mktemp("featcache"))
    yield
    if old is None:
        os.environ.pop("PLANNER_FEATURE_CACHE", None)
    else:
        os.environ["PLANNER_FEATURE_CACHE"] = old
