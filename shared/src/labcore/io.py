"""Atomic writes: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The file an :func:`atomic_directory` output carries, so that replacing it later can tell our
#: output from a folder of the user's.
OUTPUT_MARKER = ".labcore-output"


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_path(path: str | os.PathLike, *, kind: str, what: str = "--out") -> Path:
    """Check that ``path`` can become an output of ``kind`` before any work is done.

    Parameters
    ----------
    path
        The output path.
    kind : {"file", "dir"}
        What will be written there.
    what
        How the path is named in the error (the option that gave it).

    Raises
    ------
    LabcoreError
        If ``path`` is a folder where a file is expected or the reverse, or one of its
        parents is a file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> check_output_path(root / "new" / "results.json", kind="file").name
    'results.json'
    >>> try:
    ...     check_output_path(root, kind="file")
    ... except Exception as err:
    ...     print(str(err).endswith("is a folder; give a file path"))
    True
    """
    from labcore.errors import LabcoreError

    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    path = Path(path)
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise LabcoreError(f"{what} {path}: {parent} is a file, not a folder")
    if kind == "file" and path.is_dir():
        raise LabcoreError(f"{what} {path} is a folder; give a file path")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise LabcoreError(f"{what} {path} is a file; give a folder")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (readers see the old file or the new, never half).

    The file gets the mode a plain ``open`` would give it (0666 less the umask), not the
    temporary file's 0600.
    """
    path = check_output_path(path, kind="file", what="output file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
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


def strict_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON ``null``).

    ``json.dumps`` would write bare ``NaN`` and ``Infinity``, which are not JSON and which
    strict parsers (``jq``, browsers, Go, Rust) refuse.

    Examples
    --------
    >>> strict_json({"a": float("nan"), "b": [1.0, float("inf")], "c": "x"})
    {'a': None, 'b': [1.0, None], 'c': 'x'}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return strict_json(obj.item())
    return obj


def dumps_json(obj: Any, *, indent: int | None = 2, default: Any = None) -> str:
    """Strict JSON text of ``obj``: non-finite floats become ``null`` (see :func:`strict_json`)."""
    return json.dumps(strict_json(obj), indent=indent, allow_nan=False, default=default)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Serialise ``obj`` as strict JSON (NaN and infinities as ``null``) and write it to
    ``path`` atomically."""
    return atomic_write_text(path, dumps_json(obj, indent=indent) + "\n")


def check_output_dir(
    path: str | os.PathLike, *, overwrite: bool = False, what: str = "--out"
) -> Path:
    """Check, before any work is done, that :func:`atomic_directory` may write ``path``.

    Raises
    ------
    LabcoreError
        If ``path`` (or a parent) is a file; if it exists and ``overwrite`` is false; or if
        it exists, is not empty and is not an earlier output (no :data:`OUTPUT_MARKER`), so
        replacing it could delete the user's files.
    """
    from labcore.errors import LabcoreError

    path = check_output_path(path, kind="dir", what=what)
    if path.exists():
        if not overwrite:
            how = "pass --overwrite" if what.startswith("--") else "overwrite it"
            raise LabcoreError(f"{what} {path} already exists (choose another folder, or {how})")
        if not (path / OUTPUT_MARKER).exists() and any(path.iterdir()):
            raise LabcoreError(
                f"refusing to replace {path}: it holds files this tool did not write (no "
                f"{OUTPUT_MARKER} marker); move them away or choose another folder"
            )
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place when the block succeeds.

    Parameters
    ----------
    path
        The final directory.
    overwrite
        Replace an existing directory at ``path``: only an earlier output (it carries the
        :data:`OUTPUT_MARKER` file every output gets) or an empty folder, never a folder of
        the user's. Without it an existing ``path`` is an error.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_directory(root / "ckpt") as tmp:
    ...     _ = (tmp / "weights.txt").write_text("1 2 3")
    >>> sorted(p.name for p in (root / "ckpt").iterdir())
    ['.labcore-output', 'weights.txt']
    """
    path = check_output_dir(path, overwrite=overwrite, what="output folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        (tmp / OUTPUT_MARKER).write_text(
            "Written by a labcore tool; --overwrite may replace this folder.\n", encoding="utf-8"
        )
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


def decode_text(data: bytes, *, name: str) -> str:
    """``data`` as UTF-8 text (a BOM is dropped), or a clear error for binary or other encodings.

    Raises
    ------
    LabcoreError
        If ``data`` holds NUL bytes (a binary file) or is not valid UTF-8; the message names
        the byte offset and line.

    Examples
    --------
    >>> decode_text("naïve\\n".encode(), name="doc.txt")
    'naïve\\n'
    >>> try:
    ...     decode_text("naïve".encode("latin-1"), name="doc.txt")
    ... except Exception as err:
    ...     print(err)
    doc.txt is not UTF-8 text (byte 0xef at offset 2, line 1); convert it first, e.g. iconv -f latin1 -t utf-8
    """
    from labcore.errors import LabcoreError

    if b"\x00" in data[:65536]:
        raise LabcoreError(f"{name} is a binary file (it holds NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise LabcoreError(
            f"{name} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}, line "
            f"{line}); convert it first, e.g. iconv -f latin1 -t utf-8"
        ) from None
    return text.removeprefix("\ufeff")


def read_text_file(path: str | os.PathLike) -> str:
    """The UTF-8 text of ``path``, with clear errors for a missing file, a folder, a binary
    file or another encoding (see :func:`decode_text`)."""
    from labcore.errors import LabcoreError

    path = Path(path)
    if not path.exists():
        raise LabcoreError(f"file not found: {path}")
    if path.is_dir():
        raise LabcoreError(f"{path} is a folder, not a text file")
    return decode_text(path.read_bytes(), name=str(path))


MISSING_TOKENS = frozenset({"", "na", "nan", "null"})


def parse_csv_cell(text: str) -> float | None:
    """A CSV cell's value: NaN for a missing-value token (empty, NA, NaN, null), None if it
    is not a number.

    >>> parse_csv_cell(" 2.5 "), parse_csv_cell("NA"), parse_csv_cell("red")
    (2.5, nan, None)
    """
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
    cells = [parse_csv_cell(c) for c in first]
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
            value = parse_csv_cell(cell)
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
