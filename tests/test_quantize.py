import pytest
import torch

from planner import CompressError
from planner.compress.quantize import check_bits, fake_quantize, from_codes, parse_bits, to_codes


@pytest.mark.parametrize("bits", range(1, 9))
def test_codes_cover_and_stay_in_range(bits):
    z = torch.cat([torch.linspace(-0.5, 1.5, 1001), torch.rand(1000)])
    codes = to_codes(z, bits)
    assert codes.dtype == torch.uint8
    assert int(codes.min()) == 0 and int(codes.max()) == 2**bits - 1
    # the deployment path and the training path agree exactly
    assert torch.equal(from_codes(codes, bits), fake_quantize(z, bits))
    # uniform: reconstruction error at most half a step inside [0, 1]
    inside = (z >= 0) & (z <= 1)
    assert (from_codes(codes, bits)[inside] - z[inside]).abs().max() <= 0.5 / (2**bits - 1) + 1e-6


def test_straight_through_gradient():
    z = torch.rand(50, requires_grad=True)
    (fake_quantize(z, 2) * torch.arange(50.0)).sum().backward()
    assert torch.equal(z.grad, torch.arange(50.0))  # rounding passes the gradient unchanged


@pytest.mark.parametrize("bad", [0, 9, -1, 2.5, True, "4", None])
def test_bad_bitwidths_are_clear_errors(bad):
    with pytest.raises(CompressError, match="1..8"):
        check_bits(bad)


def test_untrained_bitwidth_lists_the_trained_ones():
    assert check_bits(torch.tensor(4), (2, 4)) == 4
    with pytest.raises(CompressError, match="not trained for 5 bits; trained bitwidths: 2, 4, 8"):
        check_bits(5, (2, 4, 8))


def test_from_codes_rejects_overflow_and_wrong_dtype():
    with pytest.raises(CompressError, match="does not fit in 2 bits"):
        from_codes(torch.tensor([0, 4], dtype=torch.uint8), 2)
    with pytest.raises(CompressError, match="uint8"):
        from_codes(torch.tensor([0, 1]), 2)


def test_parse_bits():
    assert parse_bits("8, 2,4,2") == (2, 4, 8)
    for bad in ("", "2,x", "0,4", "9"):
        with pytest.raises(CompressError):
            parse_bits(bad)
