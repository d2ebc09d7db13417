"""steinkit.validation: the one set of input checks and its dtype rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steinkit import validation as v


def test_public_data_rule_keeps_floats_and_makes_ints_float32():
    assert v.as_data(torch.zeros(2, 3, dtype=torch.float64)).dtype == torch.float64
    assert v.as_data(np.zeros((2, 3), dtype=np.int32)).dtype == torch.float32
    assert v.as_data([[1, 2]]).shape == (1, 2)


@pytest.mark.parametrize(
    "x, kwargs, error, match",
    [
        (torch.tensor([[0.0, float("nan")]]), {}, ValueError, "data contains NaN or infinite values"),
        (torch.zeros(3), {}, ValueError, r"data must be a 2-D tensor \(n, d\), got shape \(3,\)"),
        (torch.zeros(3, 2), {"dim": 4}, ValueError, r"data must be a 2-D tensor \(n, 4\) matching the dimension 4"),
        (torch.zeros(1, 2), {"min_rows": 2, "what": "a test"}, ValueError, "data must have at least 2 rows for a test"),
        (torch.zeros(3, 0), {}, ValueError, "data must have at least one column"),
        (np.zeros((3, 2)), {"tensors_only": True}, TypeError, "data must be a torch.Tensor"),
        (torch.zeros(3, 2, dtype=torch.int64), {"floating": True}, TypeError, "data must be a floating tensor"),
        (torch.zeros(3, 2, dtype=torch.complex64), {}, TypeError, "data must be a real-valued tensor"),
        (torch.zeros(3, 2, dtype=torch.bool), {}, TypeError, "data must be a real-valued tensor"),
        ("abc", {}, TypeError, "data must be a tensor or array"),
    ],
)
def test_bad_data_is_named(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        v.as_data(x, "data", **kwargs)


def test_model_rule_casts_to_the_parameters_and_skips_the_finiteness_check():
    like = torch.zeros(1, dtype=torch.float64)
    x = v.model_points(torch.full((2, 3), float("nan")), 3, like)
    assert x.dtype == torch.float64 and bool(x.isnan().all())


def test_kernel_rule_makes_a_float64_copy():
    x = torch.ones(2, 2, requires_grad=True)
    out = v.as_data(x, tensors_only=True, dtype=torch.float64)
    assert out.dtype == torch.float64


@pytest.mark.parametrize(
    "fn, value, error, match",
    [
        (v.positive_int, 0, ValueError, "k must be >= 1, got 0"),
        (v.positive_int, 2.0, TypeError, r"k must be an int, got type float \(2.0\)"),
        (v.positive_int, True, TypeError, r"k must be an int, got type bool \(True\)"),
        (v.nonneg_int, -1, ValueError, "k must be >= 0"),
        (v.positive_float, 0, ValueError, "k must be a finite number > 0"),
        (v.positive_float, float("inf"), ValueError, "k must be a finite number > 0"),
        (v.positive_float, "1", TypeError, "k must be a real number"),
        (v.nonneg_float, -0.1, ValueError, "k must be a finite number >= 0"),
        (v.fraction, 1.0, ValueError, r"k must lie in \[0, 1\)"),
        (v.probability, 0.0, ValueError, r"k must lie in \(0, 1\)"),
        (v.probability, float("nan"), ValueError, r"k must lie in \(0, 1\), got nan"),
        (v.probability, False, TypeError, r"k must be a float in \(0, 1\)"),
        (v.real, float("nan"), ValueError, "k must be finite"),
        (v.seed_value, 1.5, TypeError, "k must be an int"),
    ],
)
def test_bad_numbers_are_named(fn, value, error, match):
    with pytest.raises(error, match=match):
        fn(value, "k")


def test_good_numbers_come_back_normalised():
    assert v.positive_int(np.int64(3), "k") == 3
    assert v.positive_float(torch.tensor(0.5), "k") == 0.5
    assert v.fraction(0, "k") == 0.0
    assert v.one_of("a", "k", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"k must be one of \('a', 'b'\), got 'c'"):
        v.one_of("c", "k", ("a", "b"))


def test_generators():
    g = torch.Generator().manual_seed(1)
    assert v.as_generator(generator=g) is g
    assert v.as_generator() is None
    assert torch.equal(torch.rand(3, generator=v.as_generator(seed=4)), torch.rand(3, generator=v.as_generator(seed=4)))
    with pytest.raises(ValueError, match="either generator or seed"):
        v.as_generator(seed=1, generator=g)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        v.as_generator(generator=0)


def test_float_tensor_and_params():
    with pytest.raises(TypeError, match="y must be a floating tensor"):
        v.float_tensor(torch.zeros(2, dtype=torch.int64), "y")
    assert v.float_dtype(torch.zeros(1), torch.zeros(1, dtype=torch.float64)) == torch.float64
    with pytest.raises(ValueError, match="mean must contain only finite values"):
        v.as_param([float("nan")], "mean", torch.float32, ndim=1)
