"""strata.langchain.StrataVectorStore against langchain-tests' standard vector store suite,
unmodified, and what the suite does not cover (persistence, filters, scores, MMR)."""

import numpy as np
import pytest

pytest.importorskip("langchain_core", reason="strata.langchain needs the langchain extra")
pytest.importorskip("langchain_tests", reason="the standard suite is the langchain-tests package")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings  # noqa: E402
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests  # noqa: E402

from strata.langchain import StrataVectorStore  # noqa: E402


class TestStrataStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = StrataVectorStore(tmp_path / "store", self.get_embeddings())
        try:
            yield store
        finally:
            store.close()


class UnitEmbedding(Embeddings):
    """Another embedding's vectors scaled to length 1."""

    def __init__(self, inner):
        self.inner = inner

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        v = np.asarray(self.inner.embed_query(text))
        return (v / np.linalg.norm(v)).tolist()


def test_documents_persist_filter_and_score(tmp_path):
    emb = DeterministicFakeEmbedding(size=16)
    texts = [f"note {i}" for i in range(50)]
    metas = [{"kind": "fact" if i % 2 else "chat", "i": i, "nested": [{"a": 1}]} for i in range(50)]
    with StrataVectorStore.from_texts(texts, emb, metas, ids=[f"n{i}" for i in range(50)],
                                      path=tmp_path / "s", metric="l2") as vs:
        assert vs.store.count() == 50 and vs.store.metric == "l2"
    with StrataVectorStore(tmp_path / "s", emb) as vs:
        hits = vs.similarity_search_with_score("note 7", k=3)
        assert hits[0][0] == Document(id="n7", page_content="note 7", metadata=metas[7]) and hits[0][1] == 0.0
        # Metadata the filter model cannot hold (a list of objects) comes back verbatim,
        # and the rest filters.
        docs = vs.similarity_search("note 3", k=50, filter={"kind": "chat", "i": {"$lt": 10}})
        assert sorted(d.metadata["i"] for d in docs) == [0, 2, 4, 6, 8]
        rel = vs.similarity_search_with_relevance_scores("note 7", k=1)
        assert rel[0][1] == pytest.approx(1.0)
        mmr = vs.max_marginal_relevance_search("note 9", k=3, fetch_k=10)
        assert len(mmr) == 3 and mmr[0].id == "n9"
        vs.delete(filter={"kind": "chat"})
        assert vs.store.count() == 25
        retriever = vs.as_retriever(search_kwargs={"k": 2})
        assert retriever.invoke("note 11")[0].id == "n11"
        vs.delete()
        assert vs.store.count() == 0
    # Inner product of unit vectors: relevance (1 + dot) / 2, larger for nearer documents.
    unit = UnitEmbedding(emb)
    with StrataVectorStore(tmp_path / "ip", unit, metric="ip") as vs:
        vs.add_texts(texts[:10])
        scores = [s for _, s in vs.similarity_search_with_relevance_scores("note 3", k=10)]
        q = np.asarray(unit.embed_query("note 3"))
        dots = sorted((float(q @ np.asarray(e)) for e in unit.embed_documents(texts[:10])), reverse=True)
        assert scores == pytest.approx([(1 + d) / 2 for d in dots], abs=1e-5)
    with pytest.raises(ValueError, match="path="):
        StrataVectorStore.from_texts(["x"], emb)
