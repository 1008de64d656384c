"""The strata package against real stores in temporary directories."""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import strata


def rows(n, dim, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_round_trip_search_filters_text_and_delete(tmp_path):
    v = rows(300, 16)
    meta = [{"kind": "fact" if i % 3 == 0 else "chat", "i": i} for i in range(300)]
    texts = [f"note {i} about {'cats' if i % 2 else 'dogs'}" for i in range(300)]
    with strata.open(tmp_path / "s", dim=16, metric="l2") as db:
        assert (db.dim, db.metric, db.keys) == (16, "l2", "u64")
        db.upsert(list(range(300)), v, metadata=meta, texts=texts, payloads=[b"p%d" % i for i in range(300)])
        assert db.count() == 300 and len(db) == 300
        r = db.get(7)
        assert r["key"] == 7 and r["metadata"] == {"kind": "chat", "i": 7}
        assert r["text"] == texts[7] and r["payload"] == b"p7"
        np.testing.assert_array_equal(r["vector"], v[7])
        keys, dist = db.search(v[42], k=5)
        assert keys[0] == 42 and dist[0] == 0.0 and len(keys) == 5
        # Exact search agrees with a brute force.
        q = rows(4, 16, seed=1)
        ids, d = db.search(q, k=10, exact=True)
        assert ids.shape == (4, 10) and d.shape == (4, 10)
        truth = np.argsort(((q[:, None, :] - v[None, :, :]) ** 2).sum(-1), axis=1)[:, :10]
        np.testing.assert_array_equal(ids, truth)
        keys, _ = db.search(v[3], k=20, filter={"kind": "fact"})
        assert len(keys) == 20 and all(k % 3 == 0 for k in keys)
        keys, scores = db.text_search("cats", k=400)
        assert sorted(keys) == [i for i in range(300) if i % 2] and all(s < 0 for s in scores)
        keys, _ = db.hybrid_search(v[5], "cats", k=5, fusion="weighted", alpha=0.5)
        assert keys[0] == 5
        db.delete([7, 8])
        assert db.get(7) is None and db.count() == 298
        assert db.delete(filter={"kind": "fact"}) == 100
        assert db.count({"kind": "chat"}) == 198
        seen = [r["key"] for r in db.scan(filter={"kind": "chat"}, page=50)]
        assert len(seen) == 198 and seen == sorted(seen)
        assert len(list(db.scan(limit=10))) == 10
        db.flush()
        assert db.stats()["live_rows"] == 198
        db.compact(full=True)
    with strata.open(tmp_path / "s") as db:
        assert db.count() == 198 and db.get(10)["text"] == texts[10]


def test_string_keys_and_batches(tmp_path):
    with strata.open(tmp_path / "s", dim=4, keys="string", analyzer="english") as db:
        db.upsert(["a", "b", "c"], rows(3, 4), texts=["running dogs", None, "a cat ran"])
        keys, _ = db.search(rows(2, 4, 3), k=2)
        assert len(keys) == 2 and all(isinstance(k, str) for k in keys[0])
        # English stemming: "running" is found by "run"; "ran" is another stem.
        assert db.text_search("run")[0] == ["a"]
        db.upsert("d", np.ones(4, dtype=np.float64))  # one row; other dtypes converted
        assert db.get("d")["key"] == "d" and db.count() == 4
        db.delete("a")
        assert db.get("a") is None


def test_bad_input_is_refused_with_clear_errors(tmp_path):
    db = strata.open(tmp_path / "s", dim=8)
    with pytest.raises(strata.InvalidArgument, match=r"shape \(3, 7\)"):
        db.upsert([1, 2, 3], np.zeros((3, 7), np.float32))
    with pytest.raises(ValueError):  # InvalidArgument is a ValueError
        db.upsert([1, 2], rows(3, 8))
    with pytest.raises(strata.InvalidArgument, match=r"shape \(7,\)"):
        db.search(np.zeros(7, np.float32))
    with pytest.raises(strata.InvalidArgument):
        db.upsert(["x"], rows(1, 8))
    with pytest.raises(strata.InvalidArgument):
        db.search(rows(1, 8)[0], filter={"kind": {"$bogus": 1}})
    with pytest.raises(strata.InvalidArgument):
        db.upsert([1], np.full((1, 8), np.nan, np.float32))
    with pytest.raises(strata.InvalidArgument):
        strata.open(tmp_path / "t", dim=8, metric="hamming")
    with pytest.raises(strata.NotFound):
        strata.open(tmp_path / "nothing")
    with pytest.raises(strata.Locked):
        strata.open(tmp_path / "s")
    db.close()
    with pytest.raises(strata.Closed):
        db.count()
    assert issubclass(strata.Corruption, strata.StrataError)


def test_threads_share_a_store(tmp_path):
    db = strata.open(tmp_path / "s", dim=8, metric="l2")
    db.upsert(list(range(1000)), rows(1000, 8))
    failures = []

    def writer(t):
        try:
            for i in range(20):
                db.upsert([10_000 + t * 100 + i], rows(1, 8, t * 100 + i))
        except Exception as e:  # pragma: no cover - reported below
            failures.append(e)

    def reader():
        try:
            for _ in range(50):
                ids, _ = db.search(rows(8, 8, 9), k=5)
                assert ids.shape == (8, 5)
        except Exception as e:  # pragma: no cover
            failures.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not failures, failures
    assert db.count() == 1080
    db.close()


def run_child(code, *args):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )


def test_persistence_across_processes_and_a_killed_writer(tmp_path):
    path = tmp_path / "s"
    # A child writes, acknowledging each batch on stdout, then is killed mid-stream.
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, numpy as np, strata
            db = strata.open(sys.argv[1], dim=4, metric="l2")
            for i in range(100000):
                db.upsert([i], np.full((1, 4), i, np.float32), texts=[f"row {i}"])
                print(i, flush=True)
        """), str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    acked = -1
    for line in child.stdout:
        acked = int(line)
        if acked >= 200:
            break
    child.kill()
    child.wait()
    assert acked >= 200
    # Another process reads every acknowledged write back.
    out = run_child("""
        import sys, strata
        db = strata.open(sys.argv[1])
        n = int(sys.argv[2])
        missing = [i for i in range(n + 1) if db.get(i) is None or db.get(i)["text"] != f"row {i}"]
        print(len(missing), db.count() >= n + 1)
    """, path, acked)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True"]


def test_a_bulk_load_flushes_once_into_one_segment(tmp_path):
    v = rows(20_000, 32)
    with strata.open(tmp_path / "s", dim=32, metric="l2", memtable_mb=512, memtable_index=False) as db:
        db.upsert(list(range(20_000)), v)
        st = db.stats()
        assert st["segments"] == 0 and st["memtable_rows"] == 20_000
        db.flush()
        st = db.stats()
        assert st["segments"] == 1 and st["memtable_rows"] == 0
        ids, _ = db.search(v[:50], k=1)
        assert (ids[:, 0] == np.arange(50)).mean() >= 0.98
    # A small memtable flushes as it fills: several segments.
    with strata.open(tmp_path / "t", dim=32, metric="l2", memtable_mb=1) as db:
        db.upsert(list(range(20_000)), v)
        db.flush()
        assert db.stats()["segments"] > 1
    with pytest.raises(strata.InvalidArgument, match="memtable_mb"):
        strata.open(tmp_path / "u", dim=4, memtable_mb=0)


def test_search_by_target_recall_after_calibrating_on_queries(tmp_path):
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, 24)).astype(np.float32)

    def around(n):
        return (centres[rng.integers(0, 40, n)] + rng.uniform(-0.35, 0.35, (n, 24))).astype(np.float32)

    # Enough rows for the segment to get a graph index (smaller ones are scanned exactly).
    base, calibrate_on, measure = around(30_000), around(300), around(300)
    with strata.open(tmp_path / "s", dim=24, metric="l2", memtable_mb=64) as db:
        db.upsert(list(range(len(base))), base)
        db.flush()
        report = db.calibrate(calibrate_on)
        assert len(report) == 1
        seg = report[0]
        assert seg["source"] == "queries" and seg["queries"] == 300 and seg["rows"] == 30_000
        widths = [ef for ef, _ in seg["recall_at"]]
        assert widths == sorted(widths) and all(0 <= r <= 1 for _, r in seg["recall_at"])
        assert db.calibration() == report

        exact, _ = db.search(measure, k=10, exact=True)

        def recall(**kw):
            got, _ = db.search(measure, k=10, **kw)
            return np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got.tolist(), exact.tolist())])

        low, high = recall(target_recall=0.8), recall(target_recall=0.99)
        assert low >= 0.78 and high >= 0.97 and high >= low, (low, high)
        # One query at a time gives the same answers as the batch.
        one, _ = db.search(measure[0], k=10, target_recall=0.99)
        batch, _ = db.search(measure[:1], k=10, target_recall=0.99)
        assert list(one) == batch[0].tolist()
        with pytest.raises(strata.InvalidArgument, match="target recall"):
            db.search(measure[0], k=10, target_recall=1.5)
        with pytest.raises(strata.InvalidArgument, match="at least 64"):
            db.calibrate(calibrate_on[:10])
    # The calibration persists with the store.
    with strata.open(tmp_path / "s") as db:
        assert db.calibration() == report


def test_sampled_searches_report_their_recall(tmp_path):
    import time

    v = rows(3000, 16, seed=5)
    with strata.open(tmp_path / "s", dim=16, metric="l2", recall_sample=1.0, recall_seed=3) as db:
        assert db.observed_recall() is None
        db.upsert(list(range(3000)), v)
        q = rows(50, 16, seed=6)
        for x in q:
            db.search(x, k=10)
        deadline = time.time() + 60
        while (db.observed_recall() or {}).get("queries", 0) < 50:
            assert time.time() < deadline, db.observed_recall()
            time.sleep(0.01)
        o = db.observed_recall()
        assert o["queries"] == 50 and 0 <= o["low"] <= o["recall"] <= o["high"] <= 1
        assert o["dropped"] == 0 and o["recalibrations"] == 0
    with pytest.raises(strata.InvalidArgument, match="recall sampling fraction"):
        strata.open(tmp_path / "t", dim=4, recall_sample=2.0)
    with strata.open(tmp_path / "u", dim=4) as db:
        assert db.observed_recall() is None
