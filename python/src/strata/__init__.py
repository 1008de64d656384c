"""Strata: an embedded, disk-resident vector store.

Open a store with :func:`open`; it is a :class:`Store`, usable as a context manager and
from several threads (every call releases the GIL)::

    import numpy as np, strata

    with strata.open("memories", dim=384, metric="cosine", keys="string") as db:
        db.upsert(["a", "b"], np.random.rand(2, 384).astype(np.float32),
                  metadata=[{"kind": "fact"}, {"kind": "chat"}],
                  texts=["the sky is blue", "hello there"])
        keys, distances = db.search(query, k=5, filter={"kind": "fact"})
        keys, scores = db.text_search("blue sky", k=5)

Filters are dicts in the filter language of ``docs/filters.md``
(``{"kind": "fact", "ts": {"$gte": 1700000000}}``).
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from . import errors
from ._strata import NativeReplica, NativeStore
from ._strata import restore as _restore
from .errors import (
    Closed,
    Corruption,
    InvalidArgument,
    IoError,
    Locked,
    NotFound,
    Poisoned,
    StrataError,
)
from .sqlite_import import import_sqlite

__all__ = [
    "open",
    "open_replica",
    "restore",
    "Replica",
    "import_sqlite",
    "Store",
    "errors",
    "StrataError",
    "InvalidArgument",
    "Corruption",
    "Locked",
    "NotFound",
    "IoError",
    "Closed",
    "Poisoned",
]

Key = Union[int, str]


def _filter(f: Optional[dict]) -> Optional[str]:
    if f is None:
        return None
    if not isinstance(f, dict):
        raise InvalidArgument(f"a filter is a dict, not {type(f).__name__}")
    return json.dumps(f)


def _record(r: Optional[dict]) -> Optional[dict]:
    if r is not None and r.get("metadata") is not None:
        r["metadata"] = json.loads(r["metadata"])
    return r


def _matrix(vectors: Any, dim: int, what: str) -> np.ndarray:
    """`vectors` as a C-contiguous float32 matrix of `dim` columns (no copy when it is one)."""
    a = np.asarray(vectors, dtype=np.float32)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] != dim:
        raise InvalidArgument(f"{what} of shape {np.shape(vectors)}; this store holds {dim} dimensions")
    return np.ascontiguousarray(a)


class Store:
    """An open store. Create or open one with :func:`strata.open`."""

    def __init__(self, native: NativeStore):
        self._db = native
        self._dim = native.dim

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self._dim

    @property
    def metric(self) -> str:
        """The metric: ``cosine``, ``l2`` or ``ip``."""
        return self._db.metric

    @property
    def keys(self) -> str:
        """What identifies records: ``u64`` (ints) or ``string``."""
        return self._db.keys

    def upsert(
        self,
        keys: Union[Key, Sequence[Key]],
        vectors: Any,
        metadata: Optional[Sequence[Optional[dict]]] = None,
        texts: Optional[Sequence[Optional[str]]] = None,
        payloads: Optional[Sequence[Optional[bytes]]] = None,
    ) -> None:
        """Inserts or replaces records: ``keys[i]`` gets row ``i`` of ``vectors`` (a 2-D
        float32 array, used without a copy when C-contiguous; other dtypes are converted)
        with the i-th metadata dict, text and payload when given. Written in atomic
        batches of up to 1,024 rows; durable when this returns."""
        if isinstance(keys, (int, str)):
            keys = [keys]
            metadata = None if metadata is None else [metadata]  # type: ignore[list-item]
            texts = None if texts is None else [texts]  # type: ignore[list-item]
            payloads = None if payloads is None else [payloads]  # type: ignore[list-item]
        m = _matrix(vectors, self.dim, "vectors")
        meta = None
        if metadata is not None:
            meta = [None if x is None else json.dumps(x) for x in metadata]
        pays = None if payloads is None else [None if p is None else bytes(p) for p in payloads]
        self._db.upsert(list(keys), m, meta, None if texts is None else list(texts), pays)

    def search(
        self,
        q: Any,
        k: int = 10,
        filter: Optional[dict] = None,
        ef: Optional[int] = None,
        rerank: Optional[int] = None,
        exact: bool = False,
        target_recall: Optional[float] = None,
    ):
        """The ``k`` nearest live records to ``q``, nearest first, among those passing
        ``filter``. Without ``ef``, each segment is searched at the width its calibration
        gives for ``target_recall`` (default 0.95; see :meth:`calibrate`). One vector gives ``(keys, distances)`` (a list and a float32 array);
        a matrix gives two arrays of shape ``(nq, k)`` searched in parallel: ids (``-1``
        where a query has fewer hits; a store of string keys gives lists of keys
        instead) and distances (``inf`` there)."""
        a = np.asarray(q, dtype=np.float32)
        f = _filter(filter)
        if a.ndim == 1:
            if a.shape[0] != self._dim:
                raise InvalidArgument(f"a query of shape {a.shape}; this store holds {self._dim} dimensions")
            return self._db.search_one(a, k, f, ef, rerank, exact, target_recall)
        m = _matrix(a, self.dim, "queries")
        if self.keys == "u64":
            return self._db.search_matrix(m, k, f, ef, rerank, exact, target_recall)
        results = self._db.search(m, k, f, ef, rerank, exact, target_recall)
        return [r[0] for r in results], [r[1] for r in results]

    def text_search(self, text: str, k: int = 10, filter: Optional[dict] = None):
        """The ``k`` best records for ``text`` by BM25 (exact top k): ``(keys, distances)``,
        each distance the negated score."""
        return self._db.text_search(text, k, _filter(filter))

    def hybrid_search(
        self,
        q: Any,
        text: str,
        k: int = 10,
        filter: Optional[dict] = None,
        fusion: str = "rrf",
        alpha: Optional[float] = None,
        candidates: int = 100,
    ):
        """A vector search for ``q`` and a text search for ``text`` on one snapshot and
        filter, fused (``rrf`` or ``weighted`` with the vector side weighted ``alpha``):
        ``(keys, distances)``, each distance the negated fused score."""
        v = _matrix(q, self.dim, "query")[0]
        return self._db.hybrid_search(v, text, k, _filter(filter), fusion, alpha, candidates)

    def get(self, key: Key) -> Optional[dict]:
        """The record of ``key`` as a dict (``key``, ``vector``, ``metadata``, ``text``,
        ``payload``), or None."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[Key]) -> list:
        """The records of ``keys`` (None where absent), in order, from one snapshot."""
        return [_record(r) for r in self._db.get_many(list(keys))]

    def delete(self, keys: Union[Key, Sequence[Key], None] = None, filter: Optional[dict] = None) -> Optional[int]:
        """Deletes the records of ``keys`` (absent ones are ignored), or with ``filter``
        every record passing it (returning how many); atomically."""
        if filter is not None:
            if keys is not None:
                raise InvalidArgument("delete takes keys or a filter, not both")
            return self._db.delete_filter(_filter(filter))
        if keys is None:
            raise InvalidArgument("delete needs keys or a filter")
        if isinstance(keys, (int, str)):
            keys = [keys]
        self._db.delete(list(keys))
        return None

    def count(self, filter: Optional[dict] = None) -> int:
        """Live records passing ``filter`` (all of them without one)."""
        return self._db.count(_filter(filter))

    def scan(self, filter: Optional[dict] = None, limit: Optional[int] = None, page: int = 256) -> Iterator[dict]:
        """The live records passing ``filter``, as dicts, in internal id order, ``page``
        at a time, at most ``limit``."""
        after, given = None, 0
        f = _filter(filter)
        while True:
            want = page if limit is None else min(page, limit - given)
            if want <= 0:
                return
            records, after = self._db.scan(f, after, want)
            for r in records:
                yield _record(r)
            given += len(records)
            if after is None:
                return

    def flush(self) -> None:
        """Writes the memtable to a segment."""
        self._db.flush()

    def compact(self, full: bool = False) -> int:
        """Merges segments (everything into one with ``full``); returns the merges run."""
        return self._db.compact(full)

    def calibrate(self, queries: Any) -> list:
        """Calibrates every indexed segment on ``queries`` (a matrix of at least 64 rows,
        like the queries the store will serve) for searches by ``target_recall``: each
        segment's recall per beam width against exact answers. The newest 256 are kept
        to calibrate later segments. Returns each segment's calibration as a dict
        (``segment``, ``rows``, ``source``, ``queries``, ``default_ef``, ``recall_at``)."""
        return self._db.calibrate(_matrix(queries, self.dim, "queries"))

    def calibration(self) -> list:
        """Each indexed segment's calibration so far (see :meth:`calibrate`)."""
        return self._db.calibration()

    def observed_recall(self) -> Optional[dict]:
        """With ``recall_sample`` set at open: the mean recall@k of the sampled searches
        over the newest 1,000 measured (``recall``, its 95 % interval ``low``/``high``,
        ``queries``, ``by_segment_kind``, ``dropped``, ``recalibrations``); None before
        the first is measured (they are measured in the background)."""
        return self._db.observed_recall()

    def stats(self) -> dict:
        """Live records, segments and bytes."""
        return self._db.stats()

    def close(self) -> None:
        """Closes the store (later calls raise :class:`Closed`)."""
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.count()


def open(
    path: str,
    dim: Optional[int] = None,
    metric: str = "cosine",
    keys: str = "u64",
    analyzer: Optional[str] = None,
    vector_codec: Optional[str] = None,
    durability: str = "always",
    memtable_mb: Optional[int] = None,
    memtable_index: bool = True,
    recall_sample: Optional[float] = None,
    recall_seed: int = 0,
    recall_adapt: bool = False,
    remote: Optional[str] = None,
    remote_options: Optional[dict] = None,
) -> Store:
    """Opens the store in ``path``; with ``dim``, creates it when absent (``metric``
    ``cosine``, ``l2`` or ``ip``; ``keys`` ``u64`` or ``string``; ``analyzer``
    ``default``, ``english`` or ``cjk``; ``vector_codec`` ``f32``, ``f16`` or ``int8``).
    Without ``dim`` the store must exist (:class:`NotFound` otherwise). ``durability``:
    ``always`` (fsync before a write returns), ``periodic`` or ``never``.

    ``memtable_mb`` (default 64): written rows are flushed to a segment once they take
    this much memory. ``memtable_index`` (default True): index written rows in memory
    as they arrive, so that searches before the flush walk a graph instead of scanning
    them. A bulk load builds its index once by loading into one memtable and flushing
    it::

        with strata.open(path, dim=384, memtable_mb=4096, memtable_index=False) as db:
            db.upsert(keys, vectors)      # held in memory (and in the log) until...
            db.flush()                    # ...one segment, one index build

    ``recall_sample`` (for example 0.01): that fraction of vector searches (chosen by
    ``recall_seed``) is run again exactly in the background, and
    :meth:`Store.observed_recall` reports the recall the store delivers; with
    ``recall_adapt``, the segments are calibrated again when it falls below the
    searches' ``target_recall``.

    ``remote`` (``s3://bucket/prefix``, ``gs://…``, ``az://…``, ``file:///folder``) keeps
    the store in that bucket, its source of truth: every flush and compaction uploads its
    files and commits there first; one writer at a time (a writer another one took over
    stops with an error). ``remote_options`` are ``object_store`` keys (``aws_endpoint``,
    ``aws_region``, ``aws_allow_http``, ``aws_access_key_id``, …; the ``AWS_*``
    environment variables are read too). Opening an empty ``path`` restores the store
    from the bucket and takes it over. ``durability="bucket"`` returns from a write
    only once its log record is in the bucket (``docs/remote.md``)."""
    import os

    return Store(NativeStore(os.fspath(path), dim, metric, keys, analyzer, vector_codec, durability,
                             memtable_mb, memtable_index, recall_sample, recall_seed, recall_adapt,
                             remote, _options(remote_options)))


def _options(options: Optional[dict]) -> Optional[list]:
    return None if options is None else [(str(k), str(v)) for k, v in options.items()]


class Replica:
    """A read replica of a store kept in a bucket: it answers at the bucket's newest
    commit and follows it (every second, or at once with :meth:`refresh`). Open one with
    :func:`open_replica`. Answers equal the writer's at the same commit."""

    def __init__(self, native: NativeReplica):
        self._r = native
        self._dim = native.dim

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self._dim

    @property
    def keys(self) -> str:
        """What identifies records: ``u64`` (ints) or ``string``."""
        return self._r.keys

    @property
    def seq(self) -> int:
        """The bucket commit it answers at."""
        return self._r.seq

    def search(
        self,
        q: Any,
        k: int = 10,
        filter: Optional[dict] = None,
        ef: Optional[int] = None,
        rerank: Optional[int] = None,
        exact: bool = False,
        target_recall: Optional[float] = None,
    ):
        """As :meth:`Store.search`: one vector gives ``(keys, distances)``; a matrix gives
        a list of keys lists and a list of distance arrays, one per query."""
        a = np.asarray(q, dtype=np.float32)
        f = _filter(filter)
        if a.ndim == 1:
            if a.shape[0] != self._dim:
                raise InvalidArgument(f"a query of shape {a.shape}; this store holds {self._dim} dimensions")
            return self._r.search_one(a, k, f, ef, rerank, exact, target_recall)
        results = self._r.search(_matrix(a, self._dim, "queries"), k, f, ef, rerank, exact, target_recall)
        return [r[0] for r in results], [r[1] for r in results]

    def get(self, key: Key) -> Optional[dict]:
        """The record of ``key`` (as :meth:`Store.get`), or None."""
        return _record(self._r.get(key))

    def refresh(self) -> bool:
        """Moves to the bucket's newest commit now; whether it moved."""
        return self._r.refresh()

    def stats(self) -> dict:
        """What it fetched: ``seq``, ``front_bytes``, ``vector_bytes``, ``vector_reads``,
        ``cached_bytes``."""
        return self._r.stats()

    def __len__(self) -> int:
        return len(self._r)


def open_replica(url: str, cache_dir: str, cache_bytes: int = 256 << 20,
                 remote_options: Optional[dict] = None) -> Replica:
    """A read replica of the store kept in the bucket ``url``: segment fronts are fetched
    into ``cache_dir``, full vectors read by range into at most ``cache_bytes`` of memory."""
    import os

    return Replica(NativeReplica(url, os.fspath(cache_dir), cache_bytes, _options(remote_options)))


def restore(url: str, path: str, remote_options: Optional[dict] = None) -> dict:
    """Rebuilds a local store in the new or empty directory ``path`` from the bucket
    ``url`` alone (its newest commit and the bucket's log): ``{"seq", "files", "bytes",
    "log_records"}``. The copy opens with :func:`open`."""
    import os

    return _restore(url, os.fspath(path), _options(remote_options))
