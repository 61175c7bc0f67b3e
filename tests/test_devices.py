"""The one device resolver: spellings, auto, CUDA asked for where there is none (one line, exit 2)."""

from __future__ import annotations

import pytest
import torch

from planner.devices import DeviceError, device_slug, gpu_facts, parse_device, resolve_device, synchronize

CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("text,want", [("auto", "auto"), ("CPU", "cpu"), ("cuda", "cuda"), (" cuda:1 ", "cuda:1")])
def test_parse_device_spellings(text, want):
    assert parse_device(text) == want


@pytest.mark.parametrize("text", ["gpu", "cpu:0", "cuda:", "cuda:x", "", "tpu"])
def test_parse_device_rejects(text):
    with pytest.raises(DeviceError, match="unknown device"):
        parse_device(text)


def test_resolve_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device(None).type == "cpu"  # nothing asked: the CPU


@pytest.mark.skipif(CUDA, reason="checks the no-CUDA message; this machine has CUDA")
def test_cuda_without_cuda_is_one_clear_error():
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve_device("cuda:0")


def test_cpu_facts_and_slug():
    assert gpu_facts("cpu") is None
    assert device_slug("cpu") == "cpu"
    assert device_slug("cuda:0", "NVIDIA H200") == "h200"
    assert device_slug("cuda", "NVIDIA GeForce RTX 4090") == "rtx-4090"
    synchronize("cpu")  # a no-op, never an error


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_facts():
    facts = gpu_facts(resolve_device("cuda"))
    assert facts["name"] and facts["memory_gb"] > 0


@pytest.mark.skipif(CUDA, reason="checks the no-CUDA message; this machine has CUDA")
@pytest.mark.parametrize("argv", [["evaluate", "--model", "resnet-fmnist", "--device", "cuda"],
                                  ["serve", "--model", "resnet-fmnist", "--device", "cuda:0", "--port", "0"],
                                  ["profile", "--model", "resnet-fmnist", "--role", "cloud", "--device", "cuda"]])
def test_cli_cuda_without_cuda_exit_2(argv, capsys):
    from planner.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0]


def test_cli_bad_device_spelling(capsys):
    from planner.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--model", "resnet-fmnist", "--device", "gpu"])
    assert exc.value.code == 2
    assert "unknown device" in capsys.readouterr().err


def _payloads(pipe, n: int = 64):
    from planner.datasets import fashion_mnist
    from planner.types import CandidateSpec

    images = fashion_mnist("test").raw[:n]
    specs = [CandidateSpec.split("relu_5", 4), CandidateSpec.raw("relu_3"), CandidateSpec.quant("relu_1", 6),
             CandidateSpec.cloud_only()]
    return [pipe.edge_encode(images, spec)[0] for spec in specs]


def test_pipeline_to_runs_the_device_code_path_on_the_cpu():
    """SplitPipeline.to moves the model and its splits (the path a GPU takes), here to the CPU: same answers."""
    from planner.execution.pipeline import SplitPipeline

    pipe = SplitPipeline.from_zoo("resnet-fmnist")
    before = [pipe.cloud_decode(p)[0] for p in _payloads(pipe, 8)]
    assert pipe.to("cpu") is pipe and pipe.device == torch.device("cpu")
    after = [pipe.cloud_decode(p)[0] for p in _payloads(pipe, 8)]
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_server_answers_as_the_cpu_server():
    """The issue's GPU target: the same predictions as the CPU server on (almost) every input."""
    from planner.runtime.handlers import make_cloud_handler

    cpu, gpu = make_cloud_handler("resnet-fmnist", device="cpu"), make_cloud_handler("resnet-fmnist", device="cuda")
    agree = total = 0
    for payload in _payloads(cpu.pipeline, 256):
        a, b = cpu.infer(payload)[0], gpu.infer(payload)[0]
        agree += int((a.argmax(1) == b.argmax(1)).sum())
        total += len(a)
    assert agree >= 0.999 * total
