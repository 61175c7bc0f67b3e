"""README "Your own model", executed: the model file and the commands are read from the README, the weights
and an image folder are made here from Fashion-MNIST, and every command runs (fewer steps and repeats)."""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from planner.data import load_arrays

README = Path(__file__).resolve().parents[1] / "README.md"
QUICK_PROFILE = ["--repeats", "3", "--max-seconds", "0.02", "--payload-samples", "20"]


def section_blocks():
    text = README.read_text()
    body = text.split("## Your own model", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", body, re.S).group(1)
    bash = re.search(r"```bash\n(.*?)```", body, re.S).group(1)
    return python, bash


def commands(bash: str, port: int) -> list[list[str]]:
    """The bash block as argument lists: $M expanded, continuations joined, comments dropped, shortened."""
    lines = bash.replace("\\\n", " ").splitlines()
    env, out = {}, []
    for line in lines:
        line = line.split("  #")[0].strip()
        if not line:
            continue
        m = re.fullmatch(r'(\w+)="(.*)"', line)
        if m:
            env[m.group(1)] = m.group(2)
            continue
        for k, v in env.items():
            line = line.replace(f"${k}", v)
        args = shlex.split(line.replace("7000", str(port)).rstrip("&"))
        assert args[0] == "planner", line
        args = args[1:]
        if args[0] == "train-ae":
            args[args.index("--steps") + 1] = "40"
            args += ["--recal-batches", "3", "--no-progress", "--threads", "1"]
        if args[0] == "profile":
            args += QUICK_PROFILE
        out.append(args)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """mymodel.py from the README, weights trained briefly on Fashion-MNIST, and an image folder of 300 images."""
    d = tmp_path_factory.mktemp("own")
    python, _ = section_blocks()
    (d / "mymodel.py").write_text(python)
    sys.path.insert(0, str(d))
    try:
        import mymodel
    finally:
        sys.path.remove(str(d))
    x, y = load_arrays("train")
    torch.manual_seed(0)
    model = mymodel.build()
    xt, yt = torch.from_numpy(x[:4000]).float().div(255)[:, None], torch.from_numpy(y[:4000])
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(120):
        i = torch.randint(0, len(yt), (64,))
        loss = F.cross_entropy(model(xt[i]), yt[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), d / "mymodel.pt")
    torch.manual_seed(1)
    torch.save(mymodel.build().state_dict(), d / "other.pt")
    for k in range(10):
        folder = d / "images" / f"class{k}"
        folder.mkdir(parents=True)
        for i in np.flatnonzero(y[10000:] == k)[:30]:
            Image.fromarray(x[10000 + i]).save(folder / f"{i}.png")
    return d


@pytest.mark.slow
def test_readme_walkthrough(workdir):
    port = free_port()
    _, bash = section_blocks()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workdir), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "PLANNER_CACHE": str(workdir / "cache")}
    run = lambda args: subprocess.run([sys.executable, "-m", "planner", *args], cwd=workdir, env=env,  # noqa: E731
                                      capture_output=True, text=True, timeout=300)
    server, outputs = None, {}
    try:
        for args in commands(bash, port):
            if args[0] == "serve":
                server = subprocess.Popen([sys.executable, "-m", "planner", *args], cwd=workdir, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                seen = []
                for line in server.stdout:
                    seen.append(line)
                    if line.startswith("planner serve:"):
                        break
                assert server.poll() is None, "".join(seen)
                continue
            out = run(args)
            assert out.returncode == 0, (args, out.stderr[-2000:])
            outputs.setdefault(args[0], []).append(out.stdout)
        cuts = json.loads(outputs["cuts"][0])
        assert cuts["model"] == "mymodel:build" and "features_5" in [c["id"] for c in cuts["cuts"]]
        evaluated = json.loads(outputs["evaluate"][0])
        assert evaluated["n"] == 300 and evaluated["accuracy"] > 50
        card = json.loads((workdir / "ae.json").read_text())
        assert card["model_spec"]["model"] == "mymodel:build" and card["data"].startswith("images:")
        assert {"weights_sha256", "served_cuts", "bits", "train", "wall_seconds"} <= set(card)
        edge = json.loads((workdir / "edge.json").read_text())
        assert edge["settings"]["weights_sha256"] == card["weights_sha256"]
        assert edge["settings"]["data"] == card["data"]
        served = [c for c in edge["cuts"] if c["bits"]]
        assert served and all(e["accuracy"] is not None for c in served for e in c["bits"].values())
        plan = json.loads(outputs["plan"][0])
        assert {"cut", "bits", "predicted_ms", "candidates"} <= set(plan)
        planned, pinned = (json.loads(o) for o in outputs["run"])
        for report in (planned, pinned):
            assert {"n", "answered", "fallbacks", "accuracy", "measured_ms_median", "predicted_ms_median"} <= set(report)
            assert report["n"] == report["answered"] == 100 and report["fallbacks"] == 0
            assert all("kind" in p for p in report["plans"])
        assert [(p["cut"], p["bits"], p["kind"]) for p in pinned["plans"]] == [("features_5", 8, "split")]
        assert pinned["accuracy"] > 20  # 40 steps of training: far above chance (10 %), not yet close

        # other weights with this autoencoder: one clear line, exit code 2
        bad = next(a for a in commands(bash, port) if a[0] == "run")
        bad[bad.index("--weights") + 1] = "other.pt"
        out = run(bad)
        assert out.returncode == 2 and "trained on weights" in out.stderr and "Traceback" not in out.stderr
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
