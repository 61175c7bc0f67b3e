"""The coder registry: one coder per candidate kind decides bytes, shapes, profile keys and ONNX fusion."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from planner.compress import codec
from planner.compress.aeconfig import AEConfig, plan_cut
from planner.compress.autoencoder import SharedAutoencoder
from planner.compress.clipquant import RawQuantizer
from planner.errors import CompressError
from planner.execution import coders
from planner.execution.coders import coder_for, coder_of_payload, register
from planner.types import CandidateKind, CandidateSpec


@pytest.fixture(scope="module")
def pipe():
    from planner.execution.pipeline import SplitPipeline
    from planner.modelspec import load_model

    config = AEConfig([plan_cut("relu_5", (64, 7, 7))], bits=(2, 4))
    ae = SharedAutoencoder(config).eval()
    ae.id = "resnet-fmnist/shared@test"
    p = SplitPipeline.from_model(load_model("resnet-fmnist"), ae, quantizer=None)
    x = p.input_tensor(np.arange(8 * 784, dtype=np.uint8).reshape(8, 28, 28))
    with torch.inference_mode():
        p.quantizer = RawQuantizer.calibrate({"relu_5": p.split("relu_5")[0](x)}, (2, 4))
    return p


SPECS = [CandidateSpec.cloud_only(), CandidateSpec.raw("relu_5"), CandidateSpec.raw("relu_5", "float16"),
         CandidateSpec.split("relu_5", 4), CandidateSpec.split("relu_5", 2, 8), CandidateSpec.quant("relu_5", 2)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.arg)
def test_every_kind_round_trips_and_its_payload_names_its_coder(pipe, spec):
    raw = np.full((2, 28, 28), 90, np.uint8)
    payload, _ = pipe.edge_encode(raw, spec)
    dec = codec.decode(payload)
    coder = coder_of_payload(dec)
    assert coder is coder_for(spec) and coder.kind == spec.kind
    assert pipe.payload_spec(dec) == spec
    scores, _, _ = pipe.cloud_decode(payload)
    assert scores.shape == (2, 10)
    if spec.lossless:
        np.testing.assert_allclose(scores.numpy(), pipe.edge_local(raw)[0].numpy(), atol=1e-5)


def test_profile_and_accuracy_keys_and_settings(pipe):
    keys = {s.arg: coder_for(s).profile_key(s) for s in SPECS[1:]}
    assert keys == {"relu_5@raw": ("raw", "float32"), "relu_5@f16": ("raw", "float16"), "relu_5@4": ("bits", "4"),
                    "relu_5@2w8": ("widths", "8", "2"), "relu_5@q2": ("quant", "2")}
    assert coder_for(SPECS[2]).accuracy_key(SPECS[2]) == ("float16",)
    coded = coders.coded_settings(pipe, "relu_5")
    assert {s.kind for _, s in coded} == {CandidateKind.SPLIT, CandidateKind.QUANT}
    assert len(coded) == len(pipe.ae.widths("relu_5")) * 2 + 2
    assert coders.coded_settings(pipe, "relu_3") == []  # neither coder serves it
    assert coder_for(CandidateSpec.split("relu_5", 4)).fused(pipe, CandidateSpec.split("relu_5", 4))
    assert not coder_for(SPECS[4]).fused(pipe, SPECS[4])
    assert not coder_for(SPECS[5]).fused(pipe, SPECS[5])


def test_checks_name_the_coder(pipe):
    with pytest.raises(CompressError, match="raw quantizer does not serve cut 'relu_3'"):
        pipe.check("relu_3@q2")
    with pytest.raises(CompressError, match="autoencoder was not made for 3 bits"):
        pipe.check("relu_5@3")
    with pytest.raises(CompressError, match="no coder sends edge-only"):
        coder_for(CandidateSpec.edge_only())


def test_a_new_coder_plugs_in_by_registering(pipe):
    class Doubling(coders.RawCoder):
        def decode(self, pipeline, dec):
            return 2 * super().decode(pipeline, dec)

    old = coder_for(CandidateSpec.raw("relu_5"))
    with pytest.raises(CompressError, match="registered already"):
        register(Doubling())
    register(Doubling(), replace=True)
    try:
        payload, _ = pipe.edge_encode(np.zeros((1, 28, 28), np.uint8), "relu_5@raw")
        assert isinstance(coder_of_payload(codec.decode(payload)), Doubling)
    finally:
        register(old, replace=True)
    assert coder_for(CandidateSpec.raw("relu_5")) is old


def test_the_coder_branch_lives_in_one_module():
    out = subprocess.run(["git", "grep", "-n", "rawquant", "--", "planner/*.py"], capture_output=True, text=True)
    hits = [line for line in out.stdout.splitlines() if "FORMAT = " not in line]  # the calibration file format
    assert hits == []
