"""The nearline item cache: item id → k item vectors, in one SQLite file.

- **Versioned.** The file records the encoder version (a fingerprint of the encoder and
  projection weights), k and the hidden size; opening it with another version fails loudly
  (:class:`StaleCacheError`): vectors from another encoder would be silently wrong scores.
- **Incremental.** Each row keeps a hash of the item text; :meth:`ItemCache.refresh`
  re-encodes only new and changed items (and drops removed ones when asked).
- **Safe.** Write-ahead logging: readers in other processes keep reading while one writer
  writes; each batch is one transaction, so a writer killed mid-batch leaves the last
  committed state and never a half-written row.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labcore.errors import LabcoreError

SCHEMA = 1


class StaleCacheError(LabcoreError):
    """The cache was built by another encoder version (or k, or hidden size)."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def fingerprint(module: Any) -> str:
    """A short hash of a torch module's parameters and buffers (the encoder version)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class ItemCache:
    """Item vectors (k × d float32 per item) in a SQLite file.

    Parameters
    ----------
    path
        The cache file (created when missing).
    encoder_version
        The fingerprint of the encoder that made (or will make) the vectors.
    k, dim
        Vectors per item and their size (the ranker's hidden size).
    """

    def __init__(self, path: str | Path, *, encoder_version: str, k: int, dim: int) -> None:
        self.path = Path(path)
        self.version, self.k, self.dim = str(encoder_version), int(k), int(dim)
        if self.path.is_dir():
            raise LabcoreError(f"cache path {self.path} is a folder; give a file name")
        if not self.path.parent.is_dir():
            raise LabcoreError(f"the folder of the cache {self.path} does not exist")
        # check_same_thread=False: the service reads from a worker thread; its calls are
        # serialized (one at a time), which is what SQLite needs of a shared connection.
        self._conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._init_or_check()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise LabcoreError(f"{self.path} is not a mixlm item cache: {exc}") from None
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def emptied(cls, path: str | Path, *, encoder_version: str, k: int, dim: int) -> ItemCache:
        """The cache at ``path`` emptied and stamped for this encoder (``mixlm index
        --rebuild``). Only a mixlm cache is emptied, in one transaction (readers see the old
        cache or the empty one); any other file is refused, never deleted."""
        path = Path(path)
        if path.is_file():
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            try:
                try:
                    tables = {
                        r[0]
                        for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                    }
                except sqlite3.DatabaseError:
                    tables = set()
                if not {"meta", "items"} <= tables:
                    raise LabcoreError(f"{path} is not a mixlm item cache; refusing to replace it")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute("DELETE FROM items")
                    conn.execute("DELETE FROM meta")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            finally:
                conn.close()
        return cls(path, encoder_version=encoder_version, k=k, dim=dim)

    # -- lifecycle ------------------------------------------------------------------------
    def _init_or_check(self) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            c.execute(
                "CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, "
                "text_hash TEXT NOT NULL, vectors BLOB NOT NULL)"
            )
            meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
            want = {
                "schema": str(SCHEMA),
                "encoder_version": self.version,
                "k": str(self.k),
                "dim": str(self.dim),
            }
            if not meta:
                c.executemany("INSERT INTO meta VALUES (?, ?)", list(want.items()))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        if meta and meta != want:
            self.close()
            raise StaleCacheError(
                f"the cache {self.path} holds vectors of encoder {meta.get('encoder_version')} "
                f"(k = {meta.get('k')}, hidden size {meta.get('dim')}); this model is encoder "
                f"{self.version} (k = {self.k}, hidden size {self.dim}): rebuild the cache "
                "(`mixlm index --rebuild`) or load the encoder that made it"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ItemCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def __contains__(self, item_id: object) -> bool:
        row = self._conn.execute("SELECT 1 FROM items WHERE item_id = ?", (str(item_id),))
        return row.fetchone() is not None

    # -- reads and writes -----------------------------------------------------------------
    def _blob(self, vectors: np.ndarray, item_id: str) -> bytes:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.shape != (self.k, self.dim):
            raise LabcoreError(
                f"item {item_id!r}: vectors of shape {arr.shape}, the cache holds "
                f"({self.k}, {self.dim})"
            )
        if not np.isfinite(arr).all():
            raise LabcoreError(f"item {item_id!r}: vectors contain NaN or infinity")
        return arr.tobytes()

    def put_many(self, records: Iterable[tuple[str, str, np.ndarray]]) -> int:
        """Insert or replace (item id, text hash, vectors) rows in one transaction."""
        rows = [(str(i), str(h), self._blob(v, str(i))) for i, h, v in records]
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?)", rows)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return len(rows)

    def item_vectors(self, item_ids: Sequence[str]) -> list:
        """The vectors of each item as (k, dim) torch tensors (the service's item source)."""
        import torch

        return list(torch.from_numpy(self.get_many(item_ids)))

    def get_many(self, item_ids: Sequence[str]) -> np.ndarray:
        """(len(item_ids), k, dim) vectors; a missing id is an error naming it."""
        ids = [str(i) for i in item_ids]
        found: dict[str, bytes] = {}
        c = self._conn
        c.execute("BEGIN")  # one snapshot: no mix of before and after a concurrent refresh
        try:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    c.execute(
                        f"SELECT item_id, vectors FROM items WHERE item_id IN ({marks})", chunk
                    ).fetchall()
                )
        finally:
            c.execute("COMMIT")
        missing = [i for i in ids if i not in found]
        if missing:
            raise LabcoreError(
                f"{len(missing)} item(s) are not in the cache {self.path} (e.g. {missing[:3]}): "
                "run `mixlm index` on them first"
            )
        out = np.empty((len(ids), self.k, self.dim), dtype=np.float32)
        for n, i in enumerate(ids):
            out[n] = np.frombuffer(found[i], dtype=np.float32).reshape(self.k, self.dim)
        return out

    def hashes(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT item_id, text_hash FROM items").fetchall())

    def refresh(
        self,
        items: Mapping[str, str],
        encode: Callable[[list[str]], np.ndarray],
        *,
        batch_size: int = 64,
        remove_missing: bool = False,
    ) -> dict[str, int]:
        """Encode the new and changed items (by text hash) and store them, batch by batch
        (each batch one transaction); optionally drop the items no longer given."""
        known = self.hashes()
        todo = [(i, t) for i, t in items.items() if known.get(str(i)) != text_hash(t)]
        added = sum(1 for i, _ in todo if str(i) not in known)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            vectors = np.asarray(encode([t for _, t in chunk]))
            self.put_many((i, text_hash(t), v) for (i, t), v in zip(chunk, vectors, strict=True))
        removed = 0
        if remove_missing:
            given = {str(k) for k in items}
            gone = [i for i in known if i not in given]
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany("DELETE FROM items WHERE item_id = ?", [(i,) for i in gone])
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            removed = len(gone)
        return {
            "added": added,
            "updated": len(todo) - added,
            "unchanged": len(items) - len(todo),
            "removed": removed,
        }

    def check(self) -> None:
        """SQLite's integrity check (raises on a damaged file)."""
        result = self._conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise LabcoreError(f"the cache {self.path} is damaged: {result}")
