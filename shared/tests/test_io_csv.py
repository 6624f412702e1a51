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


def test_write_numeric_csv_round_trips_with_the_reader(tmp_path):
    import numpy as np

    from labcore.io import read_numeric_csv, write_numeric_csv

    X = np.array([[1.0, np.nan, 1 / 3], [2.5e-12, -4.0, 1e9]])
    path = write_numeric_csv(tmp_path / "x.csv", X, ["a", "b,c", "d"])
    Y, header = read_numeric_csv(path)
    assert header == ["a", "b,c", "d"]  # a name with a comma is quoted, not split
    np.testing.assert_allclose(Y, X, rtol=1e-9, equal_nan=True)
    assert not list(tmp_path.glob(".*tmp"))


def test_write_numeric_csv_rejects_mismatched_names(tmp_path):
    import numpy as np
    import pytest

    from labcore import LabcoreError
    from labcore.io import write_numeric_csv

    with pytest.raises(LabcoreError, match="2 column names for 3 columns"):
        write_numeric_csv(tmp_path / "x.csv", np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(LabcoreError, match="2-D"):
        write_numeric_csv(tmp_path / "x.csv", np.zeros(3), ["a", "b", "c"])


def test_read_csv_rows_line_numbers_bom_and_blank_rows(tmp_path):
    from labcore.io import read_csv_rows

    path = tmp_path / "ratings.csv"
    path.write_bytes('\ufeffuser,item,rating\n\n , \nalice,"a, b",4\n'.encode())
    assert read_csv_rows(path) == [(1, ["user", "item", "rating"]), (4, ["alice", "a, b", "4"])]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda d: d / "missing.csv", "file not found"),
        (lambda d: d, "is a folder"),
        (lambda d: (d / "blank.csv").write_text("\n , \n") and d / "blank.csv", "is empty"),
    ],
)
def test_read_csv_rows_bad_paths(tmp_path, make, match):
    from labcore.io import read_csv_rows

    with pytest.raises(LabcoreError, match=match):
        read_csv_rows(make(tmp_path))
