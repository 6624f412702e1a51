from __future__ import annotations

import pytest
from mixlm.run import tiny_bert as make_tiny_bert


@pytest.fixture
def tiny_bert():
    return make_tiny_bert()
