"""Every example in labcore's docstrings runs and prints what it shows."""

import doctest
import importlib

import pytest

from labcore import _SUBMODULES


@pytest.mark.parametrize("name", sorted(_SUBMODULES))
def test_docstring_examples(name):
    module = importlib.import_module(f"labcore.{name}")
    result = doctest.testmod(
        module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, report=True
    )
    assert result.failed == 0
