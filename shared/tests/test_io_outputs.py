"""Outputs: path kinds checked up front, the user's file mode, foreign folders never replaced,
strict JSON, text that is UTF-8 or a clear error."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from labcore.cli import emit
from labcore.errors import LabcoreError
from labcore.io import (
    OUTPUT_MARKER,
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    check_output_path,
    decode_text,
    dumps_json,
    read_text_file,
    strict_json,
)


def test_output_path_kinds(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    with pytest.raises(LabcoreError, match="is a folder; give a file path"):
        check_output_path(tmp_path / "d", kind="file")
    with pytest.raises(LabcoreError, match="is a file; give a folder"):
        check_output_path(tmp_path / "f", kind="dir")
    with pytest.raises(LabcoreError, match="f is a file, not a folder"):
        check_output_path(tmp_path / "f" / "sub" / "x.json", kind="file")
    assert check_output_path(tmp_path / "new" / "x.json", kind="file").name == "x.json"
    with pytest.raises(LabcoreError, match="is a folder"):
        atomic_write_text(tmp_path / "d", "x")  # the writer checks too: no IsADirectoryError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]  # no temporary left


def test_written_files_and_folders_get_the_users_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_directory(tmp_path / "out") as tmp:
            atomic_write_json(tmp / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640  # 0666 less the umask
    assert (tmp_path / "out" / "r.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o750  # 0777 less the umask


def test_overwrite_replaces_an_earlier_output_but_never_a_foreign_folder(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out) as tmp:
        (tmp / "v1.txt").write_text("1")
    assert (out / OUTPUT_MARKER).exists()
    with pytest.raises(LabcoreError, match="already exists"):
        check_output_dir(out)
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "v2.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "v2.txt"]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    refused = pytest.raises(LabcoreError, match="refusing to replace")
    with refused, atomic_directory(mine, overwrite=True) as tmp:
        (tmp / "x").write_text("x")
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "out"]  # no temporary left
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_directory(empty, overwrite=True) as tmp:  # nothing there to lose
        (tmp / "x").write_text("x")
    assert (empty / "x").exists()


def test_json_is_strict(tmp_path, capsys):
    import numpy as np

    obj = {"a": float("nan"), "b": [1.5, float("-inf")], "c": np.float64("nan"), "d": "NaN"}
    assert strict_json(obj) == {"a": None, "b": [1.5, None], "c": None, "d": "NaN"}
    assert json.loads(dumps_json(obj)) == {"a": None, "b": [1.5, None], "c": None, "d": "NaN"}
    atomic_write_json(tmp_path / "r.json", obj)
    assert "NaN" not in (tmp_path / "r.json").read_text().replace('"NaN"', "")
    emit(argparse.Namespace(json=True, quiet=0), {"risk": float("nan")}, "text")
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda c: pytest.fail(c)) == {"risk": None}


def test_text_must_be_utf8(tmp_path):
    assert decode_text("\ufeffhé\n".encode(), name="x") == "hé\n"  # BOM dropped
    with pytest.raises(LabcoreError, match=r"x is a binary file"):
        decode_text(b"ab\x00cd", name="x")
    with pytest.raises(LabcoreError, match=r"byte 0xe9 at offset 6, line 2"):
        decode_text("ok\nCaf\xe9".encode("latin-1"), name="x")
    with pytest.raises(LabcoreError, match="file not found"):
        read_text_file(tmp_path / "nope.txt")
    with pytest.raises(LabcoreError, match="is a folder"):
        read_text_file(tmp_path)
