"""strata.llama_index.StrataVectorStore against llama-index-core: nodes in and out,
MetadataFilters, delete by document, query modes, and a VectorStoreIndex on top."""

import numpy as np
import pytest

pytest.importorskip("llama_index.core", reason="strata.llama_index needs the llama-index extra")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import MockEmbedding  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

import strata  # noqa: E402
from strata.llama_index import StrataVectorStore, to_filter  # noqa: E402


def nodes(n=40, dim=8):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        node = TextNode(
            id_=f"n{i}",
            text=f"passage {i} about {'cats' if i % 2 else 'dogs'}",
            metadata={"kind": "fact" if i % 4 == 0 else "chat", "i": i, "tags": ["a", f"t{i % 3}"]},
            embedding=rng.standard_normal(dim).tolist(),
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i // 10}")
        out.append(node)
    return out


def query(store, node, k=5, **kw):
    return store.query(VectorStoreQuery(query_embedding=node.embedding, similarity_top_k=k, **kw))


def test_nodes_round_trip_filter_and_delete_by_document(tmp_path):
    ns = nodes()
    vs = StrataVectorStore(tmp_path / "s", metric="cosine")
    assert vs.stores_text and vs.client is None
    assert vs.add(ns) == [n.node_id for n in ns]
    r = query(vs, ns[6])
    assert r.ids[0] == "n6" and r.similarities[0] == pytest.approx(1.0, abs=1e-5)
    got = r.nodes[0]
    assert got.text == ns[6].text and got.metadata == ns[6].metadata and got.ref_doc_id == "doc0"
    facts = MetadataFilters(filters=[MetadataFilter(key="kind", value="fact"),
                                     MetadataFilter(key="i", value=20, operator=FilterOperator.GTE)])
    r = query(vs, ns[1], k=40, filters=facts)
    assert sorted(r.ids) == ["n20", "n24", "n28", "n32", "n36"]
    either = MetadataFilters(filters=[MetadataFilter(key="i", value=[1, 2], operator=FilterOperator.IN),
                                      MetadataFilter(key="tags", value="t2", operator=FilterOperator.CONTAINS)],
                             condition=FilterCondition.OR)
    r = query(vs, ns[0], k=40, filters=either)
    assert sorted(r.ids, key=lambda s: int(s[1:])) == ["n1", "n2"] + [f"n{i}" for i in range(5, 40, 3)]
    assert sorted(query(vs, ns[0], k=40, doc_ids=["doc3"]).ids) == sorted(f"n{i}" for i in range(30, 40))
    r = query(vs, ns[3], k=2, node_ids=["n3", "n4", "n9"])
    assert r.ids[0] == "n3" and len(r.ids) == 2
    # hybrid_top_k sizes hybrid queries only; sparse_top_k text queries.
    assert len(query(vs, ns[3], k=3, hybrid_top_k=7).ids) == 3
    r = vs.query(VectorStoreQuery(query_str="dogs", similarity_top_k=3, sparse_top_k=6,
                                  mode=VectorStoreQueryMode.TEXT_SEARCH))
    assert len(r.ids) == 6
    with pytest.raises(strata.InvalidArgument, match="query_embedding"):
        vs.query(VectorStoreQuery(similarity_top_k=3))
    # Text and hybrid modes use the nodes' text.
    r = vs.query(VectorStoreQuery(query_str="cats", similarity_top_k=40, mode=VectorStoreQueryMode.TEXT_SEARCH))
    assert sorted(r.ids) == sorted(f"n{i}" for i in range(1, 40, 2))
    r = vs.query(VectorStoreQuery(query_embedding=ns[5].embedding, query_str="cats", similarity_top_k=3,
                                  mode=VectorStoreQueryMode.HYBRID, alpha=0.5))
    assert r.ids[0] == "n5"
    vs.delete("doc1")
    assert vs.client.count() == 30 and vs.get_nodes(["n10", "n21"])[0].node_id == "n21"
    vs.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="kind", value="fact")]))
    assert vs.client.count() == 22
    vs.close()
    # Persisted: another instance on the same path sees the nodes.
    vs = StrataVectorStore(tmp_path / "s")
    assert len(vs.get_nodes()) == 22
    vs.clear()
    assert vs.client.count() == 0
    vs.close()


def test_filters_map_onto_the_filter_language():
    f = MetadataFilters(filters=[
        MetadataFilter(key="tags", value=["x", "y"], operator=FilterOperator.ALL),
        MetadataFilter(key="note", value=None, operator=FilterOperator.IS_EMPTY),
        MetadataFilters(filters=[MetadataFilter(key="a", value=1), MetadataFilter(key="b", value=2)],
                        condition=FilterCondition.NOT),
    ])
    assert to_filter(f) == {"$and": [
        {"$and": [{"tags": {"$contains": "x"}}, {"tags": {"$contains": "y"}}]},
        {"note": None},
        {"$not": {"$and": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}},
    ]}
    with pytest.raises(strata.InvalidArgument, match="text_match"):
        to_filter(MetadataFilters(filters=[MetadataFilter(key="t", value="x", operator=FilterOperator.TEXT_MATCH)]))


def test_a_vector_store_index_on_strata(tmp_path):
    vs = StrataVectorStore(tmp_path / "s")
    ctx = StorageContext.from_defaults(vector_store=vs)
    docs = [Document(text=f"document number {i}", id_=f"d{i}", metadata={"n": i}) for i in range(6)]
    index = VectorStoreIndex.from_documents(docs, storage_context=ctx, embed_model=MockEmbedding(embed_dim=8))
    assert vs.client.count() == 6
    retriever = index.as_retriever(similarity_top_k=6, embed_model=MockEmbedding(embed_dim=8))
    hits = retriever.retrieve("document")
    assert sorted(h.node.metadata["n"] for h in hits) == list(range(6))
    index.delete_ref_doc("d2")
    assert vs.client.count() == 5
    vs.close()
