"""Answer selection: rank the knowledge base for a citizen's message and decide.

`Selector.decide(text)` returns a `Decision`:
- `answer`  — sure: `candidates[0]` is the answer;
- `clarify` — unsure between entries: up to three candidates, best first, to offer as buttons;
- `none`    — no entry fits: no candidates (the bot says so and offers 转人工 / 留言 / 12345).

Ranking fuses e5 similarity (best over each entry's question + examples) with TF-IDF character
n-gram similarity and demotes entries whose `not_for` questions match the message better than
their own texts. The decision is taken by `knowledge.decision.DecisionModel` from features of
the top candidates (score, margin, lexical agreement, content-word coverage, negative-example
similarity); its parameters are fitted on held-out folds by `bench/knowledge.py --fit` and
stored in `knowledge/calibration.json`. Expired entries (past `review_by`) are never ranked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

from knowledge.decision import DecisionModel, Features, load_decision_model
from knowledge.embed import Embedder, Prefix
from knowledge.entries import FaqEntry, KnowledgeBase, faq_dir
from knowledge.followup import elliptical_query
from knowledge.index import Index, Scores
from knowledge.text import normalize

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
MAX_CLARIFY = 3


@dataclass(frozen=True)
class Candidate:
    """One entry the message may ask for, with its fused score."""

    entry: FaqEntry
    score: float


@dataclass(frozen=True)
class Decision:
    """What to do with a message: answer, ask back with candidates, or say no entry fits."""

    kind: Literal["answer", "clarify", "none"]
    candidates: tuple[Candidate, ...]
    query: str  # the text that was ranked (with the previous topic for elliptical follow-ups)
    confidence: float = 0.0  # the decision model's probability that candidates[0] is right
    expired: FaqEntry | None = None  # the best match when it is past review_by (not served)

    @property
    def entry(self) -> FaqEntry | None:
        """The answer when `kind == "answer"`, else None."""
        return self.candidates[0].entry if self.kind == "answer" else None


@dataclass(frozen=True)
class RankConfig:
    """How per-entry similarities are fused into one ranking score. The defaults are the
    method chosen on the held-out folds of bench/knowledge.py (see docs/nlu.md, Retrieval)."""

    passage_prefix: Prefix = "query"  # prefix of the entry texts ("query" or "passage")
    centroid_weight: float = 1.0  # share of the entry centroid next to the best single text
    lexical_weight: float = 0.05  # share of the TF-IDF char n-gram similarity
    negative_penalty: float = 1.0  # demotion per unit of not_for similarity above own similarity
    second_weight: float = 0.0  # share of the entry's second-best text (two texts agreeing)
    ridge_weight: float = 0.0  # share of a ridge classifier over e5 vectors (0: not built)
    ridge_alpha: float = 1.0
    topic_penalty: float = 0.02  # demotion of entries outside the topics the message names


def local_today() -> date:
    """Today in the hotline's time zone."""
    return datetime.now(LOCAL_TZ).date()


@dataclass
class Ranked:
    """A full ranking of one query, with the per-entry scores behind it."""

    order: np.ndarray
    fused: np.ndarray
    scores: Scores = field(repr=False)


class Selector:
    """Ranking and decision over one knowledge base (rebuilt when the base changes)."""

    def __init__(
        self,
        kb: KnowledgeBase,
        *,
        embedder: Embedder | None = None,
        config: RankConfig | None = None,
        decision: DecisionModel | None = None,
    ) -> None:
        self.kb = kb
        self.config = config or RankConfig()
        self.decision = decision or load_decision_model()
        self.embedder = embedder or Embedder()
        self.index = Index(
            list(kb),
            self.embedder,
            passage_prefix=self.config.passage_prefix,
            ridge_alpha=self.config.ridge_alpha if self.config.ridge_weight else None,
        )

    # -------------------------------------------------------------------- ranking

    def fuse(self, s: Scores) -> np.ndarray:
        """One ranking score per entry from its similarities."""
        c = self.config
        best = (1 - c.second_weight) * s.dense_max + c.second_weight * s.dense_second
        dense = (1 - c.centroid_weight) * best + c.centroid_weight * s.dense_centroid
        if c.ridge_weight and s.ridge is not None:
            dense = dense + c.ridge_weight * s.ridge
        fused = (1 - c.lexical_weight) * dense + c.lexical_weight * s.lexical
        if c.topic_penalty and s.topic_mismatch is not None:
            fused = fused - c.topic_penalty * s.topic_mismatch
        if c.negative_penalty:
            fused = fused - c.negative_penalty * np.maximum(0.0, s.negative - s.dense_max)
        return fused

    def ranked(
        self, norm_text: str, vector: np.ndarray | None = None, topic: str | None = None
    ) -> Ranked:
        """The full ranking of a normalised text (only entries of `topic` when given)."""
        scores = self.index.scores(norm_text, vector)
        fused = self.fuse(scores)
        if topic is not None:
            outside = np.array([e.topic_key != topic for e in self.index.entries])
            if not outside.all():
                fused = np.where(outside, fused - 1.0, fused)
        return Ranked(np.argsort(-fused, kind="stable"), fused, scores)

    def _servable(self, ranked: Ranked, day: date, k: int) -> list[Candidate]:
        out: list[Candidate] = []
        for i in ranked.order:
            entry = self.index.entries[int(i)]
            if entry.is_expired(day):
                continue
            out.append(Candidate(entry, float(ranked.fused[i])))
            if len(out) == k:
                break
        return out

    def rank(
        self, text: str, k: int = 3, *, today: date | None = None, topic: str | None = None
    ) -> list[Candidate]:
        """The `k` best servable entries for `text`, best first (within `topic` if given)."""
        norm = normalize(text)
        if not norm:
            return []
        return self._servable(self.ranked(norm, topic=topic), today or local_today(), k)

    # -------------------------------------------------------------------- decision

    def features(self, norm_text: str, ranked: Ranked) -> Features:
        """Decision features of a ranking (top candidate vs the rest)."""
        return Features.of(norm_text, ranked.order, ranked.fused, ranked.scores, self.index.groups)

    def decide_ranked(self, norm_text: str, ranked: Ranked, day: date) -> Decision:
        """Decide on an already computed ranking."""
        candidates = self._servable(ranked, day, MAX_CLARIFY)
        if not candidates:
            return Decision("none", (), norm_text)
        feats = self.features(norm_text, ranked)
        kind, p = self.decision.decide(feats)
        top = self.index.entries[int(ranked.order[0])]
        if kind == "answer" and top.is_expired(day):
            # the entry that fits is under review: never served, and the others do not fit
            return Decision("none", (), norm_text, p, expired=top)
        if kind == "answer":
            return Decision("answer", (candidates[0],), norm_text, p)
        if kind == "clarify":
            return Decision("clarify", tuple(candidates), norm_text, p)
        return Decision("none", (), norm_text, p)

    def decide(
        self, text: str, *, previous: str | None = None, today: date | None = None
    ) -> Decision:
        """Answer, ask back or say no entry fits; `previous` is the previous question's text."""
        day = today or local_today()
        norm = normalize(text)
        if not norm:
            return Decision("none", (), norm)
        topic = None
        if previous:
            follow = elliptical_query(norm, normalize(previous), self._previous_entry(previous))
            if follow is not None:
                norm, topic = follow
        return self.decide_ranked(norm, self.ranked(norm, topic=topic), day)

    def _previous_entry(self, previous: str) -> FaqEntry | None:
        ranked = self.ranked(normalize(previous))
        return self.index.entries[int(ranked.order[0])] if len(ranked.order) else None


# ------------------------------------------------------------------------ process-wide


_lock = threading.Lock()
_selector: Selector | None = None
_signature: tuple | None = None


def _kb_signature() -> tuple:
    directory = faq_dir()
    files = [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in directory.glob("*.yml")]
    return (str(directory), *sorted(files))


def get_selector() -> Selector:
    """The selector of this process, built from data/faq (FAQ_DIR overrides); rebuilt when a
    knowledge-base file changes (only changed texts are embedded again)."""
    global _selector, _signature
    signature = _kb_signature()
    with _lock:
        if _selector is None or signature != _signature:
            embedder = _selector.embedder if _selector is not None else None
            _selector = Selector(KnowledgeBase.load(faq_dir()), embedder=embedder)
            _signature = signature
        return _selector
