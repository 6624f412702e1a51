"""Atomic writes: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (readers see the old file or the new, never half)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Serialise ``obj`` as JSON and write it to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place when the block succeeds.

    Parameters
    ----------
    path
        The final directory.
    overwrite
        Replace an existing directory at ``path``. Without it an existing ``path`` is an error.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_directory(root / "ckpt") as tmp:
    ...     _ = (tmp / "weights.txt").write_text("1 2 3")
    >>> sorted(p.name for p in (root / "ckpt").iterdir())
    ['weights.txt']
    """
    from labcore.errors import LabcoreError

    path = Path(path)
    if path.exists() and not overwrite:
        raise LabcoreError(f"output directory already exists: {path} (choose another or overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


MISSING_TOKENS = frozenset({"", "na", "nan", "null"})


def _csv_cell(text: str) -> float | None:
    """The cell's value; NaN for a missing-value token; None if it is not a number."""
    token = text.strip()
    if token.lower() in MISSING_TOKENS:
        return float("nan")
    try:
        return float(token)
    except ValueError:
        return None


def read_csv_rows(path: str | os.PathLike) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file as ``(line number, cells)``, cells unstripped.

    The one place that opens a user's CSV: a missing file, a folder or a file without a
    non-blank row is a :class:`~labcore.errors.LabcoreError` naming the path, and a
    byte-order mark (spreadsheet exports) is dropped rather than becoming part of a cell.
    """
    import csv
    import io

    from labcore.errors import LabcoreError

    path = Path(path)
    if not path.exists():
        raise LabcoreError(f"file not found: {path}")
    if path.is_dir():
        raise LabcoreError(f"{path} is a folder, not a CSV file")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    rows = [
        (i + 1, r) for i, r in enumerate(csv.reader(io.StringIO(text))) if any(c.strip() for c in r)
    ]
    if not rows:
        raise LabcoreError(f"{path} is empty")
    return rows


def read_numeric_csv(path: str | os.PathLike) -> tuple[Any, list[str] | None]:
    """A numeric CSV (records as rows) and its header, or None. The first row is a header when
    none of its cells is a number; a byte-order mark is ignored. Empty cells and NA/NaN/null
    are missing values; any other text is an error naming its line and column."""
    import numpy as np

    from labcore.errors import LabcoreError

    rows = read_csv_rows(path)
    header = None
    first = rows[0][1]
    # A header: no cell is a number, at least one is text (an empty first cell is common:
    # pandas writes its index column without a name).
    cells = [_csv_cell(c) for c in first]
    if any(v is None for v in cells) and all(
        v is None or c.strip() == "" for v, c in zip(cells, first, strict=True)
    ):
        header = [c.strip() for c in first]
        rows = rows[1:]
        if not rows:
            raise LabcoreError(f"{path} has a header but no data rows")
    width = len(header) if header is not None else len(rows[0][1])
    X = np.empty((len(rows), width))
    for r, (line, cells) in enumerate(rows):
        if len(cells) != width:
            raise LabcoreError(f"{path}: line {line} has {len(cells)} cells, expected {width}")
        for j, cell in enumerate(cells):
            value = _csv_cell(cell)
            if value is None:
                raise LabcoreError(
                    f"{path}: line {line}, column {j + 1}: {cell.strip()!r} is not a number "
                    "(missing values are empty cells or NA)"
                )
            X[r, j] = value
    return X, header


def write_numeric_csv(path: str | os.PathLike, matrix: Any, names: list[str]) -> Path:
    """Write a numeric matrix as CSV atomically: a header row of ``names`` (quoted where a
    name needs it), then one line per row with 10 significant digits; NaN is written ``nan``,
    which :func:`read_numeric_csv` reads back as missing.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> _ = write_numeric_csv(path, np.array([[1.0, 0.5]]), ["a", "b"])
    >>> path.read_text()
    'a,b\\n1,0.5\\n'
    """
    import csv
    import io

    import numpy as np

    from labcore.errors import LabcoreError

    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise LabcoreError(f"a CSV matrix must be 2-D, got shape {matrix.shape}")
    if len(names) != matrix.shape[1]:
        raise LabcoreError(f"{len(names)} column names for {matrix.shape[1]} columns")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(names)
    np.savetxt(buf, matrix, delimiter=",", fmt="%.10g")
    return atomic_write_text(path, buf.getvalue())


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    r"""The records of a JSON Lines file as ``(line number, value)``, blank lines skipped and
    read lazily; a line that is not JSON is an error naming the file and line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
    >>> _ = path.write_text('{"a": 1}\n\n[2]\n')
    >>> list(iter_jsonl(path))
    [(1, {'a': 1}), (3, [2])]
    """
    from labcore.errors import LabcoreError

    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabcoreError(f"{path}, line {lineno}: not valid JSON ({exc.msg})") from None
