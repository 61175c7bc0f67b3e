"""The profile store: one naming rule (ProfileKey <-> file name) and one search path, used by every command."""

import json
import shutil
from pathlib import Path

import pytest

import planner
from planner.errors import ProfileError
from planner.profile import store
from planner.profile.store import ProfileKey
from planner.types import AutoencoderKind, Role

EXAMPLE = "resnet-fmnist_edge_epyc-1t-q0.125.json"


@pytest.mark.parametrize("name", [
    "resnet-fmnist_edge_epyc-1t-q0.125.json", "vgg-fmnist_cloud_xeon-8375c-2t_independent.json",
    "resnet50_3x112x112_edge_epyc-1t-L16.json", "m_both_cuda-4t-q0.5-L0.25_independent.json",
    "mobilenet_v2_cloud_epyc-2t.json"])
def test_key_round_trips_through_its_file_name(name):
    key = ProfileKey.parse(name)
    assert key is not None and key.filename == name


def test_key_fields_and_rejections():
    key = ProfileKey.parse("vgg-fmnist_cloud_xeon-8375c-2t_independent.json")
    assert (key.model, key.role, key.where, key.threads, key.quota, key.kind) == (
        "vgg-fmnist", Role.CLOUD, "xeon-8375c", 2, None, AutoencoderKind.INDEPENDENT)
    assert ProfileKey.parse("notes.json") is None
    assert ProfileKey.parse("m_edge_cpu-1t_bogus.json") is None  # not an autoencoder kind
    assert ProfileKey("m", "edge", "cpu", 1, latent=8).filename == "m_edge_cpu-1t.json"  # the default latent


def test_key_of_this_machine_names_the_file_commands_look_for(tmp_path):
    from planner.profile.device import cpu_slug

    key = ProfileKey.of("pkg.mod:build", "edge", 1, quota=0.25, kind="none")
    assert key.path(tmp_path) == tmp_path / f"pkg.mod-build_edge_{cpu_slug()}-1t-q0.25.json"
    assert ProfileKey.of("resnet50@3x112x112", "cloud", 2).path(tmp_path, arch=True).parent == tmp_path / "arch"


def _copy(src_dir: Path, dst: Path, names: list[str], where: str | None = None) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        target = n if where is None else n.replace("_epyc-", f"_{where}-")
        shutil.copy(src_dir / n, dst / target)


def test_search_path_order_and_the_shipped_examples(tmp_path, monkeypatch):
    """./profiles, then $PLANNER_PROFILES, then the user's folder, then the examples in the package."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = tmp_path / "env"
    monkeypatch.setenv(store.PROFILES_ENV, str(env))
    path = store.search_path()
    assert path == [(tmp_path / "profiles").resolve(), env.resolve(), (tmp_path / "cache/planner/profiles").resolve(),
                    store.EXAMPLES_DIR.resolve()]
    assert (store.EXAMPLES_DIR / EXAMPLE).is_file()  # shipped with the package (a wheel too: test_wheel.py)
    edge, cloud = planner.find_profiles("resnet-fmnist", quota=0.125)
    assert edge.parent == cloud.parent == store.EXAMPLES_DIR.resolve()
    pair = ["resnet-fmnist_edge_epyc-1t-q0.125.json", "resnet-fmnist_cloud_epyc-2t.json"]
    _copy(store.EXAMPLES_DIR, tmp_path / "cache/planner/profiles", pair, "other")
    assert planner.find_profiles("resnet-fmnist", quota=0.125)[0].parent.name == "profiles"  # the user's folder
    _copy(store.EXAMPLES_DIR, env, pair, "env")
    assert planner.find_profiles("resnet-fmnist", quota=0.125)[0].parent == env.resolve()
    _copy(store.EXAMPLES_DIR, tmp_path / "profiles", pair, "local")
    assert planner.find_profiles("resnet-fmnist", quota=0.125)[0].name.startswith("resnet-fmnist_edge_local")


def test_within_a_folder_this_cpu_then_threads(tmp_path, monkeypatch):
    from planner.profile.device import cpu_slug

    src = store.EXAMPLES_DIR
    for where, threads in (("aaa", 1), (cpu_slug(), 4), (cpu_slug(), 2)):
        text = (src / "resnet-fmnist_cloud_epyc-2t.json").read_text()
        (tmp_path / f"resnet-fmnist_cloud_{where}-{threads}t.json").write_text(text)
        (tmp_path / f"resnet-fmnist_edge_{where}-{threads}t.json").write_text(
            (src / "resnet-fmnist_edge_epyc-1t.json").read_text())
    edge, cloud = planner.find_profiles("resnet-fmnist", dirs=[tmp_path])
    assert edge.name == f"resnet-fmnist_edge_{cpu_slug()}-2t.json"  # this CPU, fewest threads
    assert cloud.name == f"resnet-fmnist_cloud_{cpu_slug()}-4t.json"  # this CPU, most threads


def test_missing_profile_says_what_to_do(tmp_path):
    with pytest.raises(ProfileError, match=r"no cloud profile for model 'm' .*m_cloud_<cpu>-<N>t\.json.*"
                                           r"planner profile --model m --role cloud.*PLANNER_PROFILES"):
        store.find_profile("m", "cloud", dirs=[tmp_path])
    (tmp_path / "m_edge_cpu-1t.json").write_text(json.dumps({}))
    with pytest.raises(ProfileError, match=r"found for this model: m_edge_cpu-1t\.json"):
        store.find_profile("m", "edge", quota=0.5, dirs=[tmp_path])


def test_arch_profiles_are_found_in_their_subfolder():
    edge, cloud = planner.find_profiles("resnet50")
    assert edge.parent.name == cloud.parent.name == "arch"
