"""The item cache: round trips, versioning, incremental refresh, concurrent readers and a
writer killed mid-run."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from mixlm.cache import ItemCache, StaleCacheError, text_hash

from labcore.errors import LabcoreError


def _encode(texts):
    # a deterministic stand-in encoder: vectors from the text's hash
    out = []
    for t in texts:
        rng = np.random.default_rng(int(text_hash(t)[:8], 16))
        out.append(rng.normal(size=(2, 8)).astype(np.float32))
    return np.stack(out)


def test_round_trip_and_refresh_re_encodes_only_changed_items(tmp_path):
    items = {f"a{i}": f"text {i}" for i in range(10)}
    with ItemCache(tmp_path / "c.db", encoder_version="v1", k=2, dim=8) as cache:
        assert cache.refresh(items, _encode, batch_size=3) == {
            "added": 10,
            "updated": 0,
            "unchanged": 0,
            "removed": 0,
        }
        np.testing.assert_array_equal(cache.get_many(["a3", "a7"]), _encode(["text 3", "text 7"]))
        items["a3"] = "changed"
        del items["a9"]
        items["b0"] = "new"
        calls = []

        def counting(texts):
            calls.extend(texts)
            return _encode(texts)

        stats = cache.refresh(items, counting, remove_missing=True)
        assert stats == {"added": 1, "updated": 1, "unchanged": 8, "removed": 1}
        assert sorted(calls) == ["changed", "new"]
        assert "a9" not in cache and len(cache) == 10
    with ItemCache(tmp_path / "c.db", encoder_version="v1", k=2, dim=8) as again:
        np.testing.assert_array_equal(again.get_many(["a3"])[0], _encode(["changed"])[0])


def test_a_stale_cache_and_bad_vectors_fail_loudly(tmp_path):
    ItemCache(tmp_path / "c.db", encoder_version="v1", k=2, dim=8).close()
    with pytest.raises(StaleCacheError, match="rebuild"):
        ItemCache(tmp_path / "c.db", encoder_version="v2", k=2, dim=8)
    with pytest.raises(StaleCacheError):
        ItemCache(tmp_path / "c.db", encoder_version="v1", k=4, dim=8)
    with ItemCache(tmp_path / "c.db", encoder_version="v1", k=2, dim=8) as cache:
        with pytest.raises(LabcoreError, match="shape"):
            cache.put_many([("x", "h", np.zeros((3, 8)))])
        with pytest.raises(LabcoreError, match="NaN"):
            cache.put_many([("x", "h", np.full((2, 8), np.nan))])
        with pytest.raises(LabcoreError, match="not in the cache"):
            cache.get_many(["nope"])


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from mixlm.cache import ItemCache
    cache = ItemCache(sys.argv[1], encoder_version="v1", k=4, dim=64)
    n = 0
    while True:
        rows = [(f"i{n + j}", "h", np.full((4, 64), float(n + j), np.float32)) for j in range(50)]
        cache.put_many(rows)
        n += 50
        if n == 200:
            print("ready", flush=True)
    """
)


def test_a_killed_writer_leaves_a_readable_cache_and_readers_keep_reading(tmp_path):
    path = tmp_path / "c.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        with ItemCache(path, encoder_version="v1", k=4, dim=64) as reader:
            for _ in range(5):  # a concurrent reader sees whole rows only
                ids = [f"i{j}" for j in range(100)]
                np.testing.assert_array_equal(reader.get_many(ids)[:, 0, 0], np.arange(100))
                time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    with ItemCache(path, encoder_version="v1", k=4, dim=64) as cache:
        cache.check()
        n = len(cache)
        assert n >= 200 and n % 50 == 0  # whole batches only
        vectors = cache.get_many([f"i{j}" for j in range(n)])
        np.testing.assert_array_equal(vectors[:, 2, 5], np.arange(n, dtype=np.float32))


def test_rebuild_empties_only_a_mixlm_cache(tmp_path):
    path = tmp_path / "c.db"
    with ItemCache(path, encoder_version="v1", k=2, dim=8) as cache:
        cache.refresh({"a": "one", "b": "two"}, _encode)
    with ItemCache.emptied(path, encoder_version="v2", k=2, dim=8) as cache:
        assert len(cache) == 0  # and stamped for the new encoder: no StaleCacheError
    with pytest.raises(StaleCacheError):
        ItemCache(path, encoder_version="v1", k=2, dim=8)
    notes = tmp_path / "notes.db"
    notes.write_text("my notes, not a cache\n")
    with pytest.raises(LabcoreError, match="not a mixlm item cache; refusing"):
        ItemCache.emptied(notes, encoder_version="v1", k=2, dim=8)
    assert notes.read_text() == "my notes, not a cache\n"
    with pytest.raises(LabcoreError, match="is not a mixlm item cache"):
        ItemCache(notes, encoder_version="v1", k=2, dim=8)
