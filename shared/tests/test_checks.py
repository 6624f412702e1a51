import numpy as np
import pytest

from labcore import LabcoreError
from labcore.checks import choice, finite_array, finite_float, positive_int


def test_valid_values_pass_through():
    assert positive_int("k", np.int64(4)) == 4
    assert finite_float("x", 2) == 2.0 and isinstance(finite_float("x", 2), float)
    assert choice("m", "a", ("a", "b")) == "a"
    assert finite_array("v", [1, 2], ndim=1).dtype == np.float64


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: positive_int("k", True), "k must be an integer >= 1"),
        (lambda: positive_int("k", 0), "k must be an integer >= 1"),
        (lambda: positive_int("k", 1.5), "k must be"),
        (lambda: finite_float("x", float("nan")), "x must be finite"),
        (lambda: finite_float("x", 0.0, minimum=0.0, strict=True), "x must be > 0"),
        (lambda: finite_float("x", "a"), "x must be a number"),
        (lambda: choice("m", "c", ("a", "b")), "m must be one of a, b"),
        (lambda: finite_array("v", [[1.0]], ndim=1), "1-dimensional"),
        (lambda: finite_array("v", [], ndim=1), "empty"),
        (lambda: finite_array("v", [np.inf], ndim=1), "NaN or infinite"),
    ],
)
def test_bad_values_name_the_problem(call, match):
    with pytest.raises(LabcoreError, match=match):
        call()
