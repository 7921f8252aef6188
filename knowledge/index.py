"""The search index over the knowledge base: dense e5 and lexical character n-grams.

For every servable entry the index holds its texts (canonical question + examples, normalised),
their e5 vectors, a centroid per entry, TF-IDF character 1–3-grams of the same texts and the
e5 vectors of the entry's `not_for` questions. `scores(text)` returns per-entry similarities
that the selector fuses and decides on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from knowledge.embed import Embedder, Prefix
from knowledge.entries import FaqEntry
from knowledge.text import bigrams, content_chars, normalize


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
        self.owner = np.asarray(owner, dtype=np.int64)
        self.starts = np.flatnonzero(np.r_[True, self.owner[1:] != self.owner[:-1]])
        self.vectors = embedder.embed(texts, passage_prefix)
        sums = np.add.reduceat(self.vectors, self.starts) if texts else self.vectors
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        self.centroids = (sums / np.maximum(norms, 1e-9)).astype(np.float32)
        self.neg_owner = np.asarray(neg_owner, dtype=np.int64)
        self.neg_vectors = embedder.embed(neg_texts, "query") if neg_texts else None
        self.tfidf = TfidfVectorizer(
            analyzer="char", ngram_range=ngram_range, sublinear_tf=True, min_df=1
        )
        self.lex_matrix = self.tfidf.fit_transform(texts)
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

    def query_vector(self, norm_text: str) -> np.ndarray:
        """The e5 query vector of a normalised text."""
        return self.embedder.embed_one(norm_text, "query")

    def scores(self, norm_text: str, vector: np.ndarray | None = None) -> Scores:
        """Per-entry similarities of a normalised query text."""
        q = self.query_vector(norm_text) if vector is None else vector
        sims = self.vectors @ q
        dense = _segment_max(sims, self.starts)
        # second best per entry: mask each entry's best once
        best_pos = np.full(len(self.entries), -1)
        is_best = sims == dense[self.owner]
        for pos in np.flatnonzero(is_best):
            if best_pos[self.owner[pos]] < 0:
                best_pos[self.owner[pos]] = pos
        masked = sims.copy()
        masked[best_pos[best_pos >= 0]] = -2.0
        second = _segment_max(masked, self.starts)
        second = np.where(second < -1.5, dense, second)
        centroid = self.centroids @ q
        lex_t = (self.lex_matrix @ self.tfidf.transform([norm_text]).T).toarray().ravel()
        lexical = _segment_max(lex_t.astype(np.float32), self.starts)
        negative = np.full(len(self.entries), -1.0, dtype=np.float32)
        if self.neg_vectors is not None:
            np.maximum.at(negative, self.neg_owner, self.neg_vectors @ q)
        grams = bigrams(content_chars(norm_text))
        coverage = np.zeros(len(self.entries), dtype=np.float32)
        if grams:
            for i, own in enumerate(self.entry_bigrams):
                coverage[i] = len(grams & own) / len(grams)
        ridge = q @ self.ridge if self.ridge is not None else None
        return Scores(dense, centroid, lexical, negative, coverage, second, ridge)
