"""A LlamaIndex vector store on a strata store: :class:`StrataVectorStore`.

Install with ``pip install "./python[llama-index]"``::

    from llama_index.core import StorageContext, VectorStoreIndex
    from strata.llama_index import StrataVectorStore

    vector_store = StrataVectorStore(path="memories")       # created on the first add
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=vector_store))

Each node is one record of a string-keyed store: its id the key, its embedding the
vector, its text the record's text (``TEXT_SEARCH`` and ``HYBRID`` queries use it), its
metadata (with ``ref_doc_id``) the record's metadata, which ``MetadataFilters`` test, and
the whole node, serialised, the payload.
"""

from __future__ import annotations

import json
import os
from typing import Any, List, Optional, Sequence

import numpy as np

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('strata.llama_index needs llama-index-core: pip install "strata[llama-index]"') from e

from . import Store
from . import open as open_store
from .errors import InvalidArgument, NotFound
from ._metadata import filterable

_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.ANY: "$in",
    FilterOperator.CONTAINS: "$contains",
}


def to_filter(filters: Optional[MetadataFilters]) -> Optional[dict]:
    """LlamaIndex ``MetadataFilters`` in strata's filter language (``docs/filters.md``).
    ``TEXT_MATCH`` operators have no counterpart and raise :class:`InvalidArgument`."""
    if filters is None or not filters.filters:
        return None
    parts = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            sub = to_filter(f)
            if sub is not None:
                parts.append(sub)
            continue
        op = FilterOperator(f.operator)
        if op in _OPERATORS:
            parts.append({f.key: {_OPERATORS[op]: f.value}})
        elif op == FilterOperator.ALL:
            parts.append({"$and": [{f.key: {"$contains": v}} for v in f.value]})
        elif op == FilterOperator.IS_EMPTY:
            # Missing or null (an empty list holds no value and passes no other test).
            parts.append({f.key: None})
        else:
            raise InvalidArgument(f"metadata filter operator {op.value!r} on {f.key!r} has no strata counterpart")
    if not parts:
        return None
    condition = FilterCondition(filters.condition or FilterCondition.AND)
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:
        return {"$not": {"$and": parts}}
    return parts[0] if len(parts) == 1 else {"$and": parts}


class StrataVectorStore(BasePydanticVectorStore):
    """LlamaIndex's vector store on the string-keyed strata store at ``path``, opened when
    it exists and otherwise created on the first add, with the dimension of the first
    embedding and ``metric`` (``cosine``, ``l2`` or ``ip``). Query modes: ``DEFAULT``
    (vector), ``TEXT_SEARCH``/``SPARSE`` (BM25 on the nodes' text) and ``HYBRID`` (both,
    fused with the vector side weighted ``alpha``). Similarities are larger for nearer
    nodes: the cosine, the inner product, ``1 / (1 + d)`` for squared L2, the BM25 or
    fused score."""

    stores_text: bool = True
    flat_metadata: bool = False
    path: str
    metric: str = "cosine"
    options: dict = {}

    _db: Optional[Store] = PrivateAttr(default=None)

    def __init__(self, path: str, metric: str = "cosine", **options: Any):
        super().__init__(path=os.fspath(path), metric=metric, options=options)
        try:
            self._db = open_store(self.path)
        except NotFound:
            self._db = None
        if self._db is not None and self._db.keys != "string":
            self._db.close()
            raise ValueError(f"{self.path} is a store of u64 keys; LlamaIndex nodes need string keys")

    @classmethod
    def class_name(cls) -> str:
        return "StrataVectorStore"

    @property
    def client(self) -> Optional[Store]:
        """The underlying :class:`strata.Store` (None until the first add creates it)."""
        return self._db

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        """Stores ``nodes`` (each with its embedding), replacing nodes of the same ids."""
        if not nodes:
            return []
        vectors = np.asarray([n.get_embedding() for n in nodes], dtype=np.float32)
        if self._db is None:
            self._db = open_store(self.path, dim=vectors.shape[1], metric=self.metric, keys="string",
                                  **self.options)
        full = [node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata) for n in nodes]
        self._db.upsert(
            [n.node_id for n in nodes],
            vectors,
            metadata=[filterable({k: v for k, v in m.items() if not k.startswith("_node")}) for m in full],
            texts=[n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes],
            payloads=[json.dumps(m).encode() for m in full],
        )
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes every node of the document ``ref_doc_id``."""
        if self._db is not None:
            self._db.delete(filter={"ref_doc_id": ref_doc_id})

    def delete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **kwargs: Any
    ) -> None:
        """Deletes the nodes of ``node_ids``, or those passing ``filters``, or (both
        given) those of ``node_ids`` that pass ``filters``."""
        if self._db is None:
            return
        f = to_filter(filters)
        if node_ids is None:
            if f is not None:
                self._db.delete(filter=f)
            return
        if f is not None:
            node_ids = [n.node_id for n in self.get_nodes(node_ids, filters)]
        self._db.delete(list(node_ids))

    def get_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **kwargs: Any
    ) -> List[BaseNode]:
        """The nodes of ``node_ids`` (those that exist), and/or those passing ``filters``."""
        if self._db is None:
            return []
        f = to_filter(filters)
        if node_ids is None:
            return [self._node(r) for r in self._db.scan(filter=f)]
        records = [r for r in self._db.get_many(list(node_ids)) if r is not None]
        if f is not None:
            passing = {r["key"] for r in self._db.scan(filter=f)}
            records = [r for r in records if r["key"] in passing]
        return [self._node(r) for r in records]

    def clear(self) -> None:
        """Deletes every node."""
        if self._db is not None:
            self._db.delete(filter={})

    @staticmethod
    def _node(record: dict) -> BaseNode:
        return metadata_dict_to_node(json.loads(record["payload"]), text=record.get("text") or "")

    def _similarity(self, distance: float) -> float:
        metric = self._db.metric
        if metric == "cosine":
            return 1.0 - distance
        if metric == "ip":
            return -distance
        return 1.0 / (1.0 + distance)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` best nodes for ``query`` among those passing its
        filters (and of its ``doc_ids`` / ``node_ids`` when given)."""
        if self._db is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        parts = [f for f in [to_filter(query.filters)] if f is not None]
        if query.doc_ids:
            parts.append({"ref_doc_id": {"$in": list(query.doc_ids)}})
        f = None if not parts else parts[0] if len(parts) == 1 else {"$and": parts}
        mode = VectorStoreQueryMode(query.mode)
        text_modes = (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE)
        if mode not in text_modes + (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.HYBRID):
            raise InvalidArgument(f"query mode {mode.value!r} is not offered (default, text_search, sparse, hybrid)")
        if mode not in text_modes and query.query_embedding is None:
            raise InvalidArgument(f"a {mode.value} query needs query_embedding")
        if mode != VectorStoreQueryMode.DEFAULT and not query.query_str:
            raise InvalidArgument(f"a {mode.value} query needs query_str")
        if query.node_ids and mode != VectorStoreQueryMode.DEFAULT:
            raise InvalidArgument("node_ids restricts default (vector) queries only")
        if query.node_ids:
            keys, sims = self._among(query, list(query.node_ids), f, query.similarity_top_k)
        elif mode in text_modes:
            k = query.sparse_top_k or query.similarity_top_k
            keys, d = self._db.text_search(query.query_str, k=k, filter=f)
            sims = [-x for x in d]
        elif mode == VectorStoreQueryMode.HYBRID:
            alpha = 0.5 if query.alpha is None else query.alpha
            k = query.hybrid_top_k or query.similarity_top_k
            keys, d = self._db.hybrid_search(np.asarray(query.query_embedding, np.float32), query.query_str,
                                             k=k, filter=f, fusion="weighted", alpha=alpha)
            sims = [-x for x in d]
        else:
            keys, d = self._db.search(np.asarray(query.query_embedding, np.float32), k=query.similarity_top_k,
                                      filter=f)
            sims = [self._similarity(float(x)) for x in d]
        records = self._db.get_many(list(keys))
        hits = [(r, s) for r, s in zip(records, sims) if r is not None]
        return VectorStoreQueryResult(
            nodes=[self._node(r) for r, _ in hits],
            similarities=[float(s) for _, s in hits],
            ids=[r["key"] for r, _ in hits],
        )

    def _among(self, query: VectorStoreQuery, node_ids: List[str], f: Optional[dict], k: int):
        """An exact vector search among ``node_ids``."""
        records = [r for r in self._db.get_many(node_ids) if r is not None]
        if f is not None:
            passing = {r["key"] for r in self._db.scan(filter=f)}
            records = [r for r in records if r["key"] in passing]
        if not records:
            return [], []
        q = np.asarray(query.query_embedding, np.float32)
        m = np.stack([r["vector"] for r in records])
        metric = self._db.metric
        if metric == "l2":
            d = ((m - q) ** 2).sum(axis=1)
        elif metric == "ip":
            d = -(m @ q)
        else:
            d = 1.0 - (m @ q) / max(float(np.linalg.norm(q)), 1e-30)
        order = np.argsort(d, kind="stable")[:k]
        return [records[i]["key"] for i in order], [self._similarity(float(d[i])) for i in order]

    def close(self) -> None:
        """Closes the store (releasing its lock)."""
        if self._db is not None:
            self._db.close()
            self._db = None
