"""A LangChain vector store on a strata store: :class:`StrataVectorStore`.

Install with ``pip install "./python[langchain]"``::

    from strata.langchain import StrataVectorStore

    store = StrataVectorStore("memories", embedding)       # created on the first add
    store.add_texts(["the sky is blue"], metadatas=[{"kind": "fact"}], ids=["a"])
    store.similarity_search("what colour is the sky?", k=4, filter={"kind": "fact"})

Each document is one record of a string-keyed store: its id the key, its embedding the
vector, its ``page_content`` the record's text (so text and hybrid searches find it) and
its metadata both the record's metadata (what ``filter`` tests, in the filter language of
``docs/filters.md``) and, verbatim, its payload (so documents come back exactly as they
went in, even with metadata the filter model does not hold).
"""

from __future__ import annotations

import json
import math
import os
import uuid
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Type

import numpy as np

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('strata.langchain needs langchain-core: pip install "strata[langchain]"') from e

from . import Store
from . import open as open_store
from ._metadata import filterable
from .errors import NotFound

def _document(record: dict) -> Document:
    payload = record.get("payload")
    metadata = json.loads(payload) if payload else (record.get("metadata") or {})
    return Document(id=record["key"], page_content=record.get("text") or "", metadata=metadata)


class StrataVectorStore(VectorStore):
    """LangChain's ``VectorStore`` on the string-keyed strata store at ``path``.

    The store is opened when it exists and otherwise created on the first add, with the
    dimension of the first embedding and ``metric`` (``cosine``, ``l2`` or ``ip``).
    ``options`` go to :func:`strata.open` when creating (``analyzer``, ``vector_codec``,
    ``durability``). The store stays locked by this process until :meth:`close`."""

    def __init__(self, path: str, embedding: Embeddings, metric: str = "cosine", **options: Any):
        self.path = os.fspath(path)
        self.embedding = embedding
        self.metric = metric
        self._options = options
        self._db: Optional[Store] = None
        try:
            self._db = open_store(self.path)
        except NotFound:
            pass
        if self._db is not None and self._db.keys != "string":
            self._db.close()
            raise ValueError(f"{self.path} is a store of u64 keys; LangChain documents need string keys")

    @property
    def embeddings(self) -> Embeddings:
        """The embedding model."""
        return self.embedding

    @property
    def store(self) -> Optional[Store]:
        """The underlying :class:`strata.Store` (None until the first add creates it)."""
        return self._db

    def _store_for(self, dim: int) -> Store:
        if self._db is None:
            self._db = open_store(self.path, dim=dim, metric=self.metric, keys="string", **self._options)
        return self._db

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[Optional[str]]] = None,
        **kwargs: Any,
    ) -> List[str]:
        """Embeds and stores ``texts`` (replacing documents of the same ids); returns
        the ids, new UUIDs where none were given."""
        texts = list(texts)
        if not texts:
            return []
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        ids = [i if i else str(uuid.uuid4()) for i in ids] if ids is not None else [
            str(uuid.uuid4()) for _ in texts]
        if not len(texts) == len(metadatas) == len(ids):
            raise ValueError(f"{len(texts)} texts, {len(metadatas)} metadatas and {len(ids)} ids")
        vectors = np.asarray(self.embedding.embed_documents(texts), dtype=np.float32)
        db = self._store_for(vectors.shape[1])
        db.upsert(
            ids,
            vectors,
            metadata=[filterable(m or {}) for m in metadatas],
            texts=texts,
            payloads=[json.dumps(m or {}).encode() for m in metadatas],
        )
        return ids

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes the documents of ``ids`` (absent ones are ignored); with
        ``filter=...`` instead, every document passing the filter; with neither, every
        document."""
        if self._db is None:
            return True
        f = kwargs.get("filter")
        if ids is not None and f is not None:
            raise ValueError("delete takes ids or filter=, not both")
        if ids is None:
            self._db.delete(filter=f if f is not None else {})
        else:
            self._db.delete(list(ids))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        """The documents of ``ids`` that exist, in that order."""
        if self._db is None:
            return []
        return [_document(r) for r in self._db.get_many(list(ids)) if r is not None]

    def similarity_search_with_score_by_vector(
        self, embedding: List[float], k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """The ``k`` nearest documents to ``embedding`` with their distances (smaller is
        nearer: 1 − cosine, squared L2, or the negated inner product). ``ef`` and
        ``rerank`` pass through to :meth:`strata.Store.search`."""
        if self._db is None:
            return []
        keys, distances = self._db.search(np.asarray(embedding, np.float32), k=k, filter=filter,
                                          ef=kwargs.get("ef"), rerank=kwargs.get("rerank"))
        records = self._db.get_many(keys)
        return [(_document(r), float(d)) for r, d in zip(records, distances) if r is not None]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """The ``k`` nearest documents to ``query``'s embedding with their distances."""
        return self.similarity_search_with_score_by_vector(
            self.embedding.embed_query(query), k=k, filter=filter, **kwargs)

    def similarity_search(self, query: str, k: int = 4, filter: Optional[dict] = None, **kwargs: Any) -> List[Document]:
        """The ``k`` nearest documents to ``query``'s embedding, nearest first."""
        return [d for d, _ in self.similarity_search_with_score(query, k=k, filter=filter, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: List[float], k: int = 4, filter: Optional[dict] = None, **kwargs: Any
    ) -> List[Document]:
        """The ``k`` nearest documents to ``embedding``, nearest first."""
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k=k, filter=filter, **kwargs)]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: List[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[dict] = None,
        **kwargs: Any,
    ) -> List[Document]:
        """``k`` documents chosen from the ``fetch_k`` nearest for relevance and
        diversity (``lambda_mult`` 1: relevance only, 0: diversity only)."""
        if self._db is None:
            return []
        keys, _ = self._db.search(np.asarray(embedding, np.float32), k=fetch_k, filter=filter)
        records = [r for r in self._db.get_many(keys) if r is not None]
        if not records:
            return []
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, np.float32), [r["vector"] for r in records], lambda_mult=lambda_mult, k=k)
        return [_document(records[i]) for i in chosen]

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        filter: Optional[dict] = None, **kwargs: Any,
    ) -> List[Document]:
        """Maximal marginal relevance for ``query``'s embedding."""
        return self.max_marginal_relevance_search_by_vector(
            self.embedding.embed_query(query), k=k, fetch_k=fetch_k, lambda_mult=lambda_mult, filter=filter)

    def _select_relevance_score_fn(self):
        metric = self._db.metric if self._db is not None else self.metric
        if metric == "cosine":
            return self._cosine_relevance_score_fn
        if metric == "l2":
            return lambda d: self._euclidean_relevance_score_fn(math.sqrt(max(d, 0.0)))
        # The distance is the negated inner product; of unit vectors, (1 + dot) / 2 lies in
        # [0, 1] and keeps the order.
        return lambda d: (1.0 - d) / 2.0

    @classmethod
    def from_texts(
        cls: Type["StrataVectorStore"],
        texts: List[str],
        embedding: Embeddings,
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        path: Optional[str] = None,
        metric: str = "cosine",
        **kwargs: Any,
    ) -> "StrataVectorStore":
        """A store at ``path`` (created when absent) holding ``texts``."""
        if path is None:
            raise ValueError("from_texts needs path=: the directory of the store")
        store = cls(path, embedding, metric=metric, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def close(self) -> None:
        """Closes the store (releasing its lock)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "StrataVectorStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
