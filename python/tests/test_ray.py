"""Sharded search on a local Ray cluster (``strata.ray``): shards by key hash, each a
writer or a read replica hosted by a Ray actor, on a local folder bucket and, with
``STRATA_TEST_S3``, on S3."""

import time

import numpy as np
import pytest

import strata


def rows(n, dim, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


ray = pytest.importorskip("ray", reason="ray is not installed (pip install './python[test]')")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_sharded_search_on_ray_matches_one_store(ray_cluster, bucket, tmp_path):
    import strata.ray as sray

    url, options = bucket
    n, dim = 800, 8
    v = rows(n, dim, seed=3)
    keys = [f"doc-{i}" for i in range(n)]
    meta = [{"lang": "en" if i % 2 else "de"} for i in range(n)]
    with strata.open(tmp_path / "one", dim=dim, metric="l2", keys="string") as one:
        one.upsert(keys, v, metadata=meta)
        queries = rows(10, dim, seed=4)
        expect = [one.search(q, k=10, exact=True, filter={"lang": "en"})[0] for q in queries]

    db = sray.ShardedStore(4, str(tmp_path / "shards"), remote=url, remote_options=options,
                           dim=dim, metric="l2", keys="string")
    db.upsert(keys, v, metadata=meta)
    assert len(db) == n
    counts = [sum(1 for k in keys if sray.shard_of(k, 4) == s) for s in range(4)]
    assert min(counts) > 0, counts
    got = db.search_many(queries, k=10, filter={"lang": "en"})
    assert [list(g[0]) for g in got] == [list(e) for e in expect]
    db.delete(["doc-1", "doc-3"])
    assert len(db) == n - 2
    db.flush()

    readers = sray.ShardedStore(4, str(tmp_path / "caches"), remote=url, remote_options=options,
                                replicas=True)
    assert len(readers) == n - 2
    for q in queries:
        a = db.search(q, k=10, ef=64)
        b = readers.search(q, k=10, ef=64)
        assert list(a[0]) == list(b[0])
    with pytest.raises(TypeError):
        readers.upsert(["x"], rows(1, dim))
    t = time.perf_counter()
    for q in queries:
        readers.search(q, k=10)
    print(f"fan-out over 4 replica shards: {(time.perf_counter() - t) / len(queries) * 1e3:.1f} ms per query")
    readers.close()
    db.close()
