#!/usr/bin/env python3
"""Text search beside bm25s and tantivy on the manual-pages set, in one run.

Runs `strata bench-text` (text, vector and hybrid quality and single-thread QPS), then
each peer in a fresh process pinned to one CPU: bm25s (its default tokenizer with
English stop words, as in the data set's README) and tantivy (its default tokenizer),
each indexing the passages and answering the query texts one call at a time. Quality is
scored the same way for all: right page in the top k, MRR@k, nDCG@k (binary gains).
Finally it checks strata's BM25 scores against bm25s given strata's own terms (method
"lucene", k1 = 1.2, b = 0.75): the top-k scores of every query must agree within 1e-4.

Usage: bench/text_peers.py [--data DIR] [--strata BIN] [--nq N] [--k 10] [--runs 2]
                           [--json-out FILE]
Needs a Python with bm25s and tantivy: bench/text.sh makes one and runs this.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load_jsonl(path, limit=None):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(out) >= limit:
                break
            out.append(json.loads(line))
    return out


def load_qrels(path, nq):
    rel = [set() for _ in range(nq)]
    with open(path) as f:
        for line in f:
            q, row, grade = line.split("\t")
            if int(q) < nq and int(grade) > 0:
                rel[int(q)].add(int(row))
    return rel


def quality(ranked, rel, k):
    n = max(len(ranked), 1)
    success = mrr = ndcg = 0.0
    for r, want in zip(ranked, rel):
        hits = [x in want for x in r[:k]]
        if any(hits):
            success += 1
            mrr += 1.0 / (hits.index(True) + 1)
        dcg = sum(1.0 / math.log2(i + 2) for i, h in enumerate(hits) if h)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(want), k)))
        if ideal > 0:
            ndcg += dcg / ideal
    return success / n, mrr / n, ndcg / n


def pin_one_cpu():
    os.environ.update({k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")})
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass


def timed_queries(n, runs, one):
    """Fastest of `runs` passes calling one(i) for every query: (qps, p50 ms, answers)."""
    best = None
    for _ in range(max(runs, 1)):
        lat, answers = [], []
        start = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            answers.append(one(i))
            lat.append(time.perf_counter() - t)
        total = time.perf_counter() - start
        if best is None or total < best[0]:
            best = (total, sorted(lat), answers)
    total, lat, answers = best
    return n / total, lat[len(lat) // 2] * 1e3, answers


def run_bm25s(texts, queries, k, runs):
    import bm25s

    t = time.perf_counter()
    corpus = bm25s.tokenize(texts, stopwords="en", show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    build = time.perf_counter() - t

    def one(i):
        q = bm25s.tokenize([queries[i]], stopwords="en", show_progress=False)
        if not q.vocab:
            return []
        docs, _ = retriever.retrieve(q, k=k, show_progress=False, n_threads=1)
        return [int(x) for x in docs[0]]

    qps, p50, ranked = timed_queries(len(queries), runs, one)
    return {"library": "bm25s", "version": bm25s.__version__, "build_s": build,
            "qps_single": qps, "p50_ms": p50}, ranked


def run_tantivy(texts, queries, k, runs):
    import re
    import tantivy

    t = time.perf_counter()
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("text", stored=False)
    schema = sb.build()
    tmp = tempfile.mkdtemp(prefix="tantivy-")
    index = tantivy.Index(schema, path=tmp)
    writer = index.writer(heap_size=256_000_000, num_threads=1)
    for text in texts:
        writer.add_document(tantivy.Document(text=text))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    build = time.perf_counter() - t
    searcher = index.searcher()
    assert searcher.num_docs == len(texts)
    # One writer thread and one commit: one segment whose doc ids are insertion order,
    # so a hit's doc id is its row.
    assert searcher.num_segments == 1, searcher.num_segments
    # The query parser's syntax characters become spaces (tantivy's tokenizer splits on
    # them anyway); terms are OR-ed, BM25-scored.
    clean = re.compile(r"[^\w]+")

    def one(i):
        q = clean.sub(" ", queries[i]).strip()
        if not q:
            return []
        hits = searcher.search(index.parse_query(q, ["text"]), k).hits
        return [addr.doc for _, addr in hits]

    qps, p50, ranked = timed_queries(len(queries), runs, one)
    return {"library": "tantivy", "version": getattr(tantivy, "__version__", "?"),
            "build_s": build, "qps_single": qps, "p50_ms": p50}, ranked


def run_reference(terms_dir, nq, k):
    """bm25s ("lucene") over strata's own terms: each query's top-k scores."""
    import bm25s

    base = load_jsonl(os.path.join(terms_dir, "base_terms.jsonl"))
    queries = load_jsonl(os.path.join(terms_dir, "query_terms.jsonl"), nq)
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    retriever.index(base, show_progress=False)
    vocab = retriever.vocab_dict
    out = []
    for q in queries:
        seen, distinct = set(), []
        for t in q:
            if t not in seen and t in vocab:
                seen.add(t)
                distinct.append(t)
        if not distinct:
            out.append({"ids": [], "scores": []})
            continue
        scores = retriever.get_scores(distinct)
        top = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
        out.append({"ids": top, "scores": [float(scores[i]) for i in top if scores[i] > 0]})
    return out


def one_peer(args):
    pin_one_cpu()
    data = args.data
    texts = [r["text"] for r in load_jsonl(data + "_base_texts.jsonl")]
    queries = [r["text"] for r in load_jsonl(data + "_query_texts.jsonl", args.nq)]
    runner = {"bm25s": run_bm25s, "tantivy": run_tantivy}[args.one]
    meta, ranked = runner(texts, queries, args.k, args.runs)
    meta["ranked"] = ranked
    print(json.dumps(meta))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data",
                                                  "manpages-minilm-384", "manpages-minilm-384"))
    p.add_argument("--strata", default=os.path.join(ROOT, "target", "release", "strata"))
    p.add_argument("--nq", type=int, default=None)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--analyzer", default="default")
    p.add_argument("--json-out")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        return one_peer(args)
    d = args.data
    nq = args.nq or sum(1 for _ in open(d + "_query_texts.jsonl"))
    rel = load_qrels(d + "_qrels.tsv", nq)
    work = tempfile.mkdtemp(prefix="strata-text-")
    ours_json = os.path.join(work, "strata.jsonl")
    hits_path = os.path.join(work, "hits.jsonl")
    terms_dir = os.path.join(work, "terms")
    query_texts = os.path.join(work, "query_texts.jsonl")
    with open(query_texts, "w") as f:
        for r in load_jsonl(d + "_query_texts.jsonl", nq):
            f.write(json.dumps({"text": r["text"]}) + "\n")
    cmd = ["taskset", "-c", "0", args.strata, "bench-text", "--base", d + "_base.fvecs",
           "--base-texts", d + "_base_texts.jsonl", "--queries", d + "_query.fvecs",
           "--query-texts", query_texts, "--qrels", d + "_qrels.tsv", "--nq", str(nq),
           "--k", str(args.k), "--runs", str(args.runs), "--analyzer", args.analyzer,
           "--json", ours_json, "--text-hits", hits_path, "--terms-out", terms_dir]
    print("$", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    rows = load_jsonl(ours_json)
    for peer in ("bm25s", "tantivy"):
        out = subprocess.run([sys.executable, __file__, "--one", peer, "--data", d, "--nq", str(nq),
                              "--k", str(args.k), "--runs", str(args.runs)],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        s, m, n = quality(r.pop("ranked"), rel, args.k)
        r.update({"mode": "text", "success_at_k": s, "mrr": m, "ndcg": n})
        rows.append(r)
    # Scores against the reference on the same terms.
    ref = run_reference(terms_dir, nq, args.k)
    ours = load_jsonl(hits_path)
    worst, rank_mismatch = 0.0, 0
    for a, b in zip(ours, ref):
        sa, sb = a["scores"], b["scores"]
        if len(sa) != len(sb):
            rank_mismatch += 1
        for x, y in zip(sa, sb):
            worst = max(worst, abs(x - y))
    print(f"\nBM25 scores against bm25s (lucene) on strata's terms, {nq} queries × top {args.k}: "
          f"largest difference {worst:.2e}; queries with a different number of hits: {rank_mismatch}")
    print(f"\n| library | mode | right page in top {args.k} | MRR@{args.k} | nDCG@{args.k} | QPS (1 thread) | p50 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['library']} | {r['mode']} | {r['success_at_k']:.3f} | {r['mrr']:.3f} | "
              f"{r['ndcg']:.3f} | {r['qps_single']:.0f} | {r['p50_ms']:.3f} |")
    if args.json_out:
        with open(args.json_out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
            f.write(json.dumps({"check": "bm25 scores vs bm25s lucene", "max_abs_diff": worst,
                                "count_mismatch": rank_mismatch}) + "\n")
    if worst > 1e-4 or rank_mismatch:
        sys.exit("strata's BM25 scores differ from the reference")


if __name__ == "__main__":
    main()
