"""Sharded search on Ray: a store split into N shards by key hash, each shard a Strata
store (a writer, or a read replica of a store kept in a bucket) hosted by a Ray actor.
The client routes each upsert and delete to its key's shard and sends every search to
all shards in parallel, merging their top k (filters apply on each shard)::

    import ray, strata.ray

    ray.init()
    db = strata.ray.ShardedStore(4, "/data/shards", dim=384, keys="string",
                                 remote="s3://bucket/memories")
    db.upsert(["a", "b"], vectors, metadata=[{"kind": "fact"}, {"kind": "chat"}])
    keys, distances = db.search(query, k=10, filter={"kind": "fact"})

    # Elsewhere: read replicas of the same shards, following the bucket.
    readers = strata.ray.ShardedStore(4, "/cache/shards", remote="s3://bucket/memories",
                                      replicas=True)

Shard ``i`` lives in ``<path>/shard-<i>`` and, with ``remote``, in the bucket at
``<remote>/shard-<i>``. Keys are spread by CRC-32 of their decimal or UTF-8 text, so
every client agrees on where a key lives as long as the shard count stays the same.
"""

from __future__ import annotations

import zlib
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["ShardedStore", "shard_of"]


def shard_of(key: Any, shards: int) -> int:
    """The shard of ``key`` among ``shards``: CRC-32 of its text, modulo the count."""
    return zlib.crc32(str(key).encode("utf-8")) % shards


class _Shard:
    """One shard, inside a Ray actor: a writer store, or a read replica."""

    def __init__(self, path: str, replica: bool, remote: Optional[str], remote_options: Optional[dict],
                 cache_bytes: int, open_kwargs: dict):
        import strata

        self._replica = replica
        if replica:
            self._db = strata.open_replica(remote, path, cache_bytes, remote_options)
        else:
            self._db = strata.open(path, remote=remote, remote_options=remote_options, **open_kwargs)

    def upsert(self, keys: list, vectors: np.ndarray, metadata: Optional[list], texts: Optional[list]) -> int:
        self._db.upsert(keys, vectors, metadata=metadata, texts=texts)
        return len(keys)

    def delete(self, keys: list) -> None:
        self._db.delete(keys)

    def search(self, queries: np.ndarray, k: int, filter: Optional[dict], ef: Optional[int]) -> list:
        out = []
        for q in queries:
            keys, dists = self._db.search(q, k=k, filter=filter, ef=ef)
            out.append((list(keys), [float(d) for d in dists]))
        return out

    def refresh(self) -> bool:
        return self._db.refresh() if self._replica else False

    def count(self) -> int:
        return len(self._db)

    def flush(self) -> None:
        if not self._replica:
            self._db.flush()

    def close(self) -> None:
        if not self._replica:
            self._db.close()


class ShardedStore:
    """``shards`` Strata stores behind Ray actors, addressed as one. With ``replicas``,
    every shard is a read replica of ``<remote>/shard-<i>`` (``path`` holds their
    caches) and writes are refused. Other keyword arguments go to :func:`strata.open`
    for each writer shard (``dim``, ``metric``, ``keys``, ``durability``, …)."""

    def __init__(self, shards: int, path: str, *, remote: Optional[str] = None,
                 remote_options: Optional[dict] = None, replicas: bool = False,
                 cache_bytes: int = 256 << 20, num_cpus: float = 0.25, **open_kwargs: Any):
        import os

        import ray

        if shards < 1:
            raise ValueError("a sharded store has at least one shard")
        if replicas and remote is None:
            raise ValueError("replicas follow a bucket: give remote")
        self.shards = shards
        self.replicas = replicas
        actor = ray.remote(num_cpus=num_cpus)(_Shard)
        base = os.fspath(path)
        self._actors = [
            actor.remote(
                os.path.join(base, f"shard-{i}"),
                replicas,
                None if remote is None else f"{remote.rstrip('/')}/shard-{i}",
                remote_options,
                cache_bytes,
                open_kwargs,
            )
            for i in range(shards)
        ]
        # Surface an open that failed (a bad URL, a locked directory) here, not later.
        ray.get([a.count.remote() for a in self._actors])

    def _by_shard(self, keys: Sequence[Any]) -> List[List[int]]:
        rows: List[List[int]] = [[] for _ in range(self.shards)]
        for i, key in enumerate(keys):
            rows[shard_of(key, self.shards)].append(i)
        return rows

    def upsert(self, keys: Sequence[Any], vectors: Any, metadata: Optional[Sequence[Optional[dict]]] = None,
               texts: Optional[Sequence[Optional[str]]] = None) -> None:
        """Inserts or replaces records, each on its key's shard (shards in parallel)."""
        import ray

        if self.replicas:
            raise TypeError("a sharded store of replicas is read-only")
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim == 1:
            v = v.reshape(1, -1)
        if len(keys) != v.shape[0]:
            raise ValueError(f"{len(keys)} keys for {v.shape[0]} vectors")
        calls = []
        for shard, rows in enumerate(self._by_shard(keys)):
            if rows:
                calls.append(self._actors[shard].upsert.remote(
                    [keys[i] for i in rows],
                    np.ascontiguousarray(v[rows]),
                    None if metadata is None else [metadata[i] for i in rows],
                    None if texts is None else [texts[i] for i in rows],
                ))
        ray.get(calls)

    def delete(self, keys: Sequence[Any]) -> None:
        """Deletes records, each on its key's shard."""
        import ray

        if self.replicas:
            raise TypeError("a sharded store of replicas is read-only")
        ray.get([self._actors[s].delete.remote([keys[i] for i in rows])
                 for s, rows in enumerate(self._by_shard(keys)) if rows])

    def search_many(self, queries: Any, k: int = 10, filter: Optional[dict] = None,
                    ef: Optional[int] = None) -> List[Tuple[list, np.ndarray]]:
        """The ``k`` nearest records of each query row over all shards, searched in
        parallel: a ``(keys, distances)`` pair per query, nearest first."""
        import ray

        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q.reshape(1, -1)
        ref = ray.put(np.ascontiguousarray(q))
        per_shard = ray.get([a.search.remote(ref, k, filter, ef) for a in self._actors])
        out = []
        for qi in range(q.shape[0]):
            merged = [(d, key) for keys, dists in (s[qi] for s in per_shard) for key, d in zip(keys, dists)]
            merged.sort(key=lambda x: x[0])
            top = merged[:k]
            out.append(([key for _, key in top], np.asarray([d for d, _ in top], dtype=np.float32)))
        return out

    def search(self, query: Any, k: int = 10, filter: Optional[dict] = None,
               ef: Optional[int] = None) -> Tuple[list, np.ndarray]:
        """The ``k`` nearest records of one query over all shards: ``(keys, distances)``."""
        return self.search_many(query, k, filter, ef)[0]

    def refresh(self) -> int:
        """Replicas: moves every shard to its bucket's newest commit; how many moved."""
        import ray

        return sum(ray.get([a.refresh.remote() for a in self._actors]))

    def flush(self) -> None:
        """Writers: flushes every shard (commits it to its bucket)."""
        import ray

        ray.get([a.flush.remote() for a in self._actors])

    def __len__(self) -> int:
        import ray

        return sum(ray.get([a.count.remote() for a in self._actors]))

    def close(self) -> None:
        """Closes every writer shard and stops the actors."""
        import ray

        ray.get([a.close.remote() for a in self._actors])
        for a in self._actors:
            ray.kill(a)
        self._actors = []
