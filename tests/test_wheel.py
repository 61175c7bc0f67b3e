"""A wheel install (not editable) works on its own: `planner.run()` on a zoo model and `planner demo --fast`.

The wheel is built from this checkout and installed into a fresh virtual environment whose only other packages
are this environment's dependencies (torch, numpy, ...), reached through a .pth file; the checkout is not on its
path, and the commands run from an empty folder, so the package data (zoo weights, autoencoders, the example
profiles, traces) must come from the wheel itself.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from planner.data import DEFAULT_ROOT

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not DEFAULT_ROOT.exists(), reason="apt-get install dataset-fashion-mnist")]

RUN = """
import json, sys
import planner
from planner.data import load_arrays
from planner.runtime.local import ServerProcess

assert planner.__file__.startswith(sys.argv[1]), planner.__file__
images, labels = load_arrays("test")
with ServerProcess("resnet-fmnist", "shared") as server:
    report = planner.run(images[:8], model="resnet-fmnist", cloud=server.address, link="20mbit", labels=labels[:8])
print(json.dumps({"n": len(report), "errors": report.errors, "fallbacks": report.fallbacks,
                  "accuracy": report.accuracy, "edge_profile": report.edge_profile}))
"""


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp / "dist").glob("planner-*.whl"))
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    with zipfile.ZipFile(wheel) as z:  # a pure-Python wheel installs by unpacking it into site-packages
        z.extractall(purelib)
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (purelib / "_planner_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PLANNER_PROFILES")}
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    return python, purelib, work, env, wheel


def test_the_wheel_ships_the_package_data(wheel_env):
    names = set(zipfile.ZipFile(wheel_env[4]).namelist())
    for needed in ("planner/zoo/weights/resnet-fmnist.pt", "planner/compress/weights/resnet-fmnist-shared.pt",
                   "planner/example_profiles/resnet-fmnist_edge_epyc-1t.json",
                   "planner/example_profiles/arch/resnet50_edge_epyc-1t.json",
                   "planner/traces/hsdpa_norway_bus_1.tsv"):
        assert needed in names, needed


def test_planner_run_from_a_wheel_install(wheel_env):
    python, purelib, work, env, _ = wheel_env
    out = subprocess.run([str(python), "-c", RUN, str(purelib)], cwd=work, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n"] == 8 and result["errors"] == 0 and result["fallbacks"] == 0
    edge = Path(result["edge_profile"])  # found on the search path: the examples inside the installed package
    assert result["accuracy"] is not None and edge.parent == purelib / "planner" / "example_profiles", edge
    assert edge.name.startswith("resnet-fmnist_edge_")


def test_demo_fast_from_a_wheel_install(wheel_env):
    python, _, work, env, _ = wheel_env
    out = subprocess.run([str(python), "-m", "planner", "demo", "--fast", "--n", "4", "--baseline-n", "2",
                          "--edge-cpu-quota", "0", "--json", str(work / "demo.json")], cwd=work, env=env,
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads((work / "demo.json").read_text())["links"]
    assert len(rows) == 2 and all(r["errors"] == 0 for r in rows)
