"""Synthetic stand-ins for the committed profiles, named by the naming rule (tests of the report and notebook)."""

from __future__ import annotations

from pathlib import Path

from planner.profile.synthetic import synthetic_profile

CPU = "synthetic"


def write_profiles(directory: Path, model: str = "vgg-fmnist", *, quota: float = 0.125,
                   quota_slowdown: float = 8.0) -> dict[str, Path]:
    """Edge (1 thread, and under a CPU quota), cloud (2 threads), and the independent-AE pair, for `model`."""
    directory.mkdir(parents=True, exist_ok=True)
    specs = {
        "edge": ("edge", 0, 4.0, f"{model}_edge_{CPU}-1t.json", "shared"),
        "edge_quota": ("edge", 0, 4.0 * quota_slowdown, f"{model}_edge_{CPU}-1t-q{quota:g}.json", "shared"),
        "cloud": ("cloud", 0, 2.0, f"{model}_cloud_{CPU}-2t.json", "shared"),
        "edge_independent": ("edge", 1, 4.0 * quota_slowdown, f"{model}_edge_{CPU}-1t-q{quota:g}_independent.json",
                             "independent"),
        "cloud_independent": ("cloud", 1, 2.0, f"{model}_cloud_{CPU}-2t_independent.json", "independent"),
    }
    out = {}
    for key, (role, seed, ms, name, kind) in specs.items():
        p = synthetic_profile(role, seed=seed, whole_model_ms=ms, model=model, autoencoder=f"{model}/{kind}@synthetic")
        out[key] = p.save(directory / name)
    return out
