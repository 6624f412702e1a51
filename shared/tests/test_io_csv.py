import numpy as np
import pytest

from labcore.errors import LabcoreError
from labcore.io import read_numeric_csv


def test_header_with_an_empty_index_cell(tmp_path):
    path = tmp_path / "pandas.csv"
    path.write_text(",a,b\n0,1.5,\n1,NA,2\n")
    X, header = read_numeric_csv(path)
    assert header == ["", "a", "b"]
    np.testing.assert_array_equal(np.isnan(X), [[False, False, True], [False, True, False]])


def test_all_missing_first_row_is_data_and_text_is_an_error(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("NA,\n1,2\n")
    X, header = read_numeric_csv(path)
    assert header is None and X.shape == (2, 2)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,x\n")
    with pytest.raises(LabcoreError, match="line 2, column 2"):
        read_numeric_csv(bad)
