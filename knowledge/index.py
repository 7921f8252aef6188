"""The search index over the knowledge base: dense e5 and lexical character n-grams.

For every servable entry the index holds its texts (canonical question + examples, normalised),
their e5 vectors, a centroid per entry, TF-IDF character 1–3-grams of the same texts and the
e5 vectors of the entry's `not_for` questions. `scores(text)` returns per-entry similarities
that the selector fuses and decides on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from knowledge.embed import Embedder, Prefix
from knowledge.entries import FaqEntry
from knowledge.text import bigrams, content_chars, measure_words, normalize, topics_named


@dataclass(frozen=True)
class Scores:
    """Per-entry similarities of one query (arrays aligned with `Index.entries`)."""

    dense_max: np.ndarray  # best e5 cosine over the entry's texts
    dense_centroid: np.ndarray  # e5 cosine with the mean of the entry's text vectors
    lexical: np.ndarray  # best TF-IDF char 1–3-gram cosine over the entry's texts
    negative: np.ndarray  # best e5 cosine over the entry's not_for texts (-1: none)
    coverage: np.ndarray  # share of the query's content bigrams found in the entry's texts
    dense_second: np.ndarray  # second-best e5 cosine over the entry's texts (= best if one)
    ridge: np.ndarray | None = None  # linear (ridge) classifier score over e5 vectors
    topic_mismatch: np.ndarray | None = None  # 1 where the query names topics, not this one
    neighbours: np.ndarray | None = None  # entries of the 10 nearest texts, nearest first
    measure_missing: np.ndarray | None = None  # 1 where the query's measure words are not in
    # the entry's texts or answer (see knowledge.text.measure_words)


NEIGHBOURS = 10  # nearest texts whose entries vote in the decision features


def _dot(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """matrix @ vector without BLAS: on a loaded 2-core machine OpenBLAS's threads turn a
    0.5 ms product into 10-20 ms."""
    return np.einsum("ij,j->i", matrix, vector)


def _segment_max(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.maximum.reduceat(values, starts) if len(values) else values


class Index:
    """Dense + lexical index of a list of entries."""

    def __init__(
        self,
        entries: list[FaqEntry],
        embedder: Embedder,
        *,
        passage_prefix: Prefix = "query",
        ngram_range: tuple[int, int] = (1, 3),
        ridge_alpha: float | None = None,
    ) -> None:
        self.entries = [e for e in entries if e.texts]
        self.embedder = embedder
        texts: list[str] = []
        owner: list[int] = []
        neg_texts: list[str] = []
        neg_owner: list[int] = []
        self.entry_bigrams: list[set[str]] = []
        for i, entry in enumerate(self.entries):
            own = list(dict.fromkeys(normalize(t) for t in entry.texts))
            texts.extend(own)
            owner.extend([i] * len(own))
            for t in entry.not_for:
                neg_texts.append(normalize(t))
                neg_owner.append(i)
            grams: set[str] = set()
            for t in own:
                grams |= bigrams(content_chars(t)) | bigrams(t)
            self.entry_bigrams.append(grams)
        self.texts = texts
        self.full_texts = [normalize(" ".join((*e.texts, e.answer))) for e in self.entries]
        self.topic_keys = np.array([e.topic_key for e in self.entries])
        self.groups = [(e.topic_key, e.subtopic) for e in self.entries]
        self.owner = np.asarray(owner, dtype=np.int64)
        self.starts = np.flatnonzero(np.r_[True, self.owner[1:] != self.owner[:-1]])
        self.sizes = np.diff(np.r_[self.starts, len(self.owner)])
        self.vectors = embedder.embed(texts, passage_prefix)
        sums = np.add.reduceat(self.vectors, self.starts) if texts else self.vectors
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        self.centroids = (sums / np.maximum(norms, 1e-9)).astype(np.float32)
        self.neg_owner = np.asarray(neg_owner, dtype=np.int64)
        self.neg_vectors = embedder.embed(neg_texts, "query") if neg_texts else None
        self.tfidf = TfidfVectorizer(
            analyzer="char", ngram_range=ngram_range, sublinear_tf=True, min_df=1
        )
        self.lex_matrix = self.tfidf.fit_transform(texts).tocsc()
        self._analyzer = self.tfidf.build_analyzer()
        self._idf = self.tfidf.idf_.astype(np.float32)
        self.gram_column: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for i, grams in enumerate(self.entry_bigrams):
            for gram in grams:
                rows.append(i)
                cols.append(self.gram_column.setdefault(gram, len(self.gram_column)))
        self.gram_matrix = sparse.csc_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(self.entries), max(1, len(self.gram_column))),
        )
        self.ridge = None
        if ridge_alpha is not None and texts:
            # closed-form ridge regression of one-hot entry labels on the e5 vectors
            x = self.vectors.astype(np.float64)
            xty = np.zeros((x.shape[1], len(self.entries)))
            np.add.at(xty.T, self.owner, x)
            gram = x.T @ x + ridge_alpha * np.eye(x.shape[1])
            self.ridge = np.linalg.solve(gram, xty).astype(np.float32)
        embedder.save()

    def __len__(self) -> int:
        return len(self.entries)

    def lexical_text_scores(self, norm_text: str) -> np.ndarray:
        """TF-IDF cosine of the query with every text (the vectorizer's own weighting, computed
        directly: `transform()` validates its input at ~8 ms a call)."""
        counts: dict[int, int] = {}
        vocabulary = self.tfidf.vocabulary_
        for gram in self._analyzer(norm_text):
            col = vocabulary.get(gram)
            if col is not None:
                counts[col] = counts.get(col, 0) + 1
        if not counts:
            return np.zeros(len(self.texts), dtype=np.float32)
        cols = np.fromiter(counts, dtype=np.int64, count=len(counts))
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
        weights = tf * self._idf[cols]
        weights /= np.linalg.norm(weights)
        return np.asarray(self.lex_matrix[:, cols] @ weights, dtype=np.float32).ravel()

    def query_vector(self, norm_text: str) -> np.ndarray:
        """The e5 query vector of a normalised text."""
        return self.embedder.embed_one(norm_text, "query")

    def scores(self, norm_text: str, vector: np.ndarray | None = None) -> Scores:
        """Per-entry similarities of a normalised query text."""
        q = self.query_vector(norm_text) if vector is None else vector
        sims = _dot(self.vectors, q)
        dense = _segment_max(sims, self.starts)
        # second best per entry: texts are grouped by entry, so sort within groups
        order = np.lexsort((-sims, self.owner))
        ranked_sims = sims[order]
        has_two = self.sizes > 1
        second = dense.copy()
        second[has_two] = ranked_sims[self.starts[has_two] + 1]
        centroid = _dot(self.centroids, q)
        lexical = _segment_max(self.lexical_text_scores(norm_text), self.starts)
        negative = np.full(len(self.entries), -1.0, dtype=np.float32)
        if self.neg_vectors is not None:
            np.maximum.at(negative, self.neg_owner, _dot(self.neg_vectors, q))
        grams = bigrams(content_chars(norm_text))
        coverage = np.zeros(len(self.entries), dtype=np.float32)
        columns = [self.gram_column[g] for g in grams if g in self.gram_column]
        if grams and columns:
            hits = np.asarray(self.gram_matrix[:, columns].sum(axis=1)).ravel()
            coverage = (hits / len(grams)).astype(np.float32)
        ridge = np.einsum("j,jk->k", q, self.ridge) if self.ridge is not None else None
        named = topics_named(norm_text)
        mismatch = np.zeros(len(self.entries), dtype=np.float32)
        if named:
            mismatch = (~np.isin(self.topic_keys, list(named))).astype(np.float32)
        measure = measure_words(norm_text)
        missing = None
        if measure:
            missing = np.array(
                [any(w not in t for w in measure) for t in self.full_texts], dtype=np.float32
            )
        k = min(NEIGHBOURS, len(sims))
        nearest = np.argpartition(-sims, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
        nearest = nearest[np.argsort(-sims[nearest], kind="stable")]
        return Scores(
            dense,
            centroid,
            lexical,
            negative,
            coverage,
            second,
            ridge,
            mismatch,
            self.owner[nearest],
            missing,
        )
