"""strata.import_sqlite: an SQLite table of embeddings moves into a store."""

import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import strata


def memory_table(path, n, dim=4):
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE memory_embeddings(memory_id TEXT, key TEXT, category TEXT, embedding BLOB, content TEXT)")
    c.executemany(
        "INSERT INTO memory_embeddings VALUES (?, ?, ?, ?, ?)",
        ((f"mem-{i}", f"k{i}", ["fact", "event"][i % 2], np.full(dim, i + 1, "<f4").tobytes(), f"memory {i}")
         for i in range(n)),
    )
    c.commit()
    c.close()


def test_a_memory_table_moves_over(tmp_path):
    memory_table(tmp_path / "m.db", 2500)
    with strata.open(tmp_path / "s", dim=4, metric="l2", keys="string") as db:
        n = strata.import_sqlite(db, tmp_path / "m.db", "memory_embeddings", "embedding",
                                 key_column="memory_id", metadata_columns=["key", "category"],
                                 text_column="content")
        assert n == 2500 and db.count() == 2500 and db.count({"category": "event"}) == 1250
        r = db.get("mem-7")
        assert r["metadata"] == {"key": "k7", "category": "event"} and r["text"] == "memory 7"
        np.testing.assert_array_equal(r["vector"], np.full(4, 8, np.float32))
        assert db.search(np.full(4, 10.1, np.float32), k=1)[0] == ["mem-9"]
    # f64 and JSON vectors, integer keys into a u64 store.
    c = sqlite3.connect(tmp_path / "m.db")
    c.execute("CREATE TABLE v(id INTEGER, f64 BLOB, js TEXT)")
    c.execute("INSERT INTO v VALUES (3, ?, '[1, 2]')", (np.array([0.5, 1.5], "<f8").tobytes(),))
    c.commit()
    with strata.open(tmp_path / "u", dim=2, metric="l2") as db:
        strata.import_sqlite(db, tmp_path / "m.db", "v", "f64", key_column="id", vector_encoding="f64le")
        np.testing.assert_array_equal(db.get(3)["vector"], [0.5, 1.5])
        strata.import_sqlite(db, tmp_path / "m.db", "v", "js", vector_encoding="json")
        np.testing.assert_array_equal(db.get(0)["vector"], [1, 2])


def test_bad_rows_are_named_and_write_nothing(tmp_path):
    memory_table(tmp_path / "m.db", 100)
    c = sqlite3.connect(tmp_path / "m.db")
    c.execute("UPDATE memory_embeddings SET embedding = zeroblob(13) WHERE memory_id = 'mem-42'")
    c.commit()
    with strata.open(tmp_path / "s", dim=4, keys="string") as db:
        with pytest.raises(strata.InvalidArgument, match=r"rowid 43 \(key 'mem-42'\).*13-byte blob"):
            strata.import_sqlite(db, tmp_path / "m.db", "memory_embeddings", "embedding", key_column="memory_id")
        c.execute("UPDATE memory_embeddings SET embedding = zeroblob(12) WHERE memory_id = 'mem-42'")
        c.commit()
        with pytest.raises(strata.InvalidArgument, match=r"rowid 43 \(key 'mem-42'\): dimension 3"):
            strata.import_sqlite(db, tmp_path / "m.db", "memory_embeddings", "embedding", key_column="memory_id")
        assert db.count() == 0
        with pytest.raises(strata.InvalidArgument, match="no table 'memories'.*memory_embeddings"):
            strata.import_sqlite(db, tmp_path / "m.db", "memories", "embedding")
        with pytest.raises(strata.InvalidArgument, match="text_column.*no column 'body'"):
            strata.import_sqlite(db, tmp_path / "m.db", "memory_embeddings", "embedding", text_column="body")
        # The store's own rules, before anything is written: a non-finite vector.
        c.execute("UPDATE memory_embeddings SET embedding = ? WHERE memory_id = 'mem-42'",
                  (np.array([1, np.inf, 0, 0], "<f4").tobytes(),))
        c.commit()
        with pytest.raises(strata.InvalidArgument, match=r"rowid 43 \(key 'mem-42'\): .*nothing was written"):
            strata.import_sqlite(db, tmp_path / "m.db", "memory_embeddings", "embedding", key_column="memory_id")
        assert db.count() == 0
    with strata.open(tmp_path / "u", dim=4) as db:
        with pytest.raises(strata.InvalidArgument, match="u64 ids"):
            strata.import_sqlite(db, tmp_path / "m.db", "memory_embeddings", "embedding", key_column="memory_id")
    # A path with characters a URI would misread.
    odd = tmp_path / "a?b#c%d.db"
    memory_table(odd, 3)
    with strata.open(tmp_path / "o", dim=4, keys="string") as db:
        assert strata.import_sqlite(db, odd, "memory_embeddings", "embedding", key_column="memory_id") == 3


def test_a_killed_import_leaves_a_prefix_of_whole_rows(tmp_path):
    total = 200_000
    memory_table(tmp_path / "m.db", total)
    store = tmp_path / "s"
    strata.open(store, dim=4, metric="l2", keys="string").close()
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, strata
        db = strata.open(sys.argv[1])
        strata.import_sqlite(db, sys.argv[2], "memory_embeddings", "embedding", key_column="memory_id",
                             metadata_columns=["key", "category"], text_column="content")
        print("finished", flush=True)
    """), str(store), str(tmp_path / "m.db")], stdout=subprocess.PIPE, text=True)

    def logged():
        return sum(e.stat().st_size for e in os.scandir(store) if e.name.endswith(".wal"))

    start = logged()
    while logged() < start + (256 << 10) and child.poll() is None:
        time.sleep(0.002)
    child.kill()
    out, _ = child.communicate()
    assert "finished" not in out, "the import was killed before it finished"
    with strata.open(store) as db:
        n = db.count()
        assert 0 < n < total
        got = db.get_many([f"mem-{i}" for i in range(total)])
        assert all(r is not None for r in got[:n]) and all(r is None for r in got[n:])
        assert all(r["metadata"]["key"] == f"k{i}" and r["text"] == f"memory {i}" for i, r in enumerate(got[:n]))
        # The same call again finishes it.
        strata.import_sqlite(db, tmp_path / "m.db", "memory_embeddings", "embedding", key_column="memory_id",
                             metadata_columns=["key", "category"], text_column="content")
        assert db.count() == total
        last = db.get(f"mem-{total - 1}")
        assert last["metadata"]["key"] == f"k{total - 1}" and last["text"] == f"memory {total - 1}"
