"""Stores kept in a bucket, from Python: a writer, restore, a read replica, and sharded
search on a local Ray cluster. They run on a local folder (``file://``) and, when
``STRATA_TEST_S3`` names moto's S3 server (``test.sh`` starts it), on S3 as well."""

import numpy as np
import pytest

import strata


def rows(n, dim, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_writer_restore_and_replica(bucket, tmp_path):
    url, options = bucket
    v = rows(600, 16)
    keys = [f"k{i}" for i in range(600)]
    meta = [{"kind": "fact" if i % 3 == 0 else "chat"} for i in range(600)]
    with strata.open(tmp_path / "w", dim=16, metric="l2", keys="string", durability="bucket",
                     remote=url, remote_options=options) as db:
        db.upsert(keys[:300], v[:300], metadata=meta[:300])
        db.flush()
        db.upsert(keys[300:], v[300:], metadata=meta[300:])  # only in the bucket's log
        db.delete(["k1", "k2"])
        # A copy from the bucket alone holds every bucket-durable write.
        report = strata.restore(url, tmp_path / "copy", remote_options=options)
        assert report["files"] >= 1 and report["log_records"] >= 1
        with strata.open(tmp_path / "copy") as copy:
            assert len(copy) == 598
            assert copy.get("k599")["metadata"] == {"kind": "chat"}
            assert copy.get("k1") is None
        db.flush()
        replica = strata.open_replica(url, tmp_path / "cache", 1 << 20, remote_options=options)
        assert len(replica) == 598 and replica.keys == "string"
        for q in rows(20, 16, seed=1):
            want = db.search(q, k=10, ef=64, filter={"kind": "fact"})
            got = replica.search(q, k=10, ef=64, filter={"kind": "fact"})
            assert list(got[0]) == list(want[0])
            np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(replica.get("k5")["vector"], v[5])
        seq = replica.seq
        db.upsert(["new"], rows(1, 16, seed=2))
        db.flush()
        assert replica.refresh() and replica.seq > seq and replica.get("new") is not None
        assert replica.stats()["front_bytes"] > 0


def test_bucket_options_are_checked(tmp_path):
    with pytest.raises(strata.InvalidArgument):
        strata.open(tmp_path / "s", dim=4, durability="bucket")
    with pytest.raises(strata.StrataError):
        strata.open(tmp_path / "t", dim=4, remote="nonsense-scheme://x")
