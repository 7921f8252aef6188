"""NLU benchmark: parse every line of the dev set with the current Rasa model and print
FAQ / intent top-1 accuracy, macro-F1, the confident-wrong rate, the fallback rate and the worst
confusions. Trains nothing; prints figures and exits 0 whatever they are (tests assert).

    .venv-rasa/bin/python bench/nlu.py [--model models/current.tar.gz] [--dev tests/nlu/dev.yml]
                                       [--json [PATH]]   # default PATH var/nlu-bench.json

Run with the main venv's python it re-executes itself under .venv-rasa (Rasa lives there).
Goal (issue 3): >= 95 % top-1 on the dev set, confident-wrong <= 2 %.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import unicodedata
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
FALLBACK_INTENT = "nlu_fallback"
DEFAULT_FAQ_CONFIDENCE = 0.5


def _reexec_under_rasa_venv() -> None:
    """Rasa is only installed in .venv-rasa; hop there when started with another python."""
    try:
        import rasa  # noqa: F401
    except ImportError:
        if RASA_PYTHON.exists() and Path(sys.executable).resolve() != RASA_PYTHON.resolve():
            os.execv(str(RASA_PYTHON), [str(RASA_PYTHON), *sys.argv])  # noqa: S606 fixed path
        sys.exit("bench/nlu.py needs Rasa: run it with .venv-rasa/bin/python")


# ------------------------------------------------------------------ thresholds and normalising


def fallback_threshold(config_path: Path) -> float:
    """The FallbackClassifier threshold from config.yml (Rasa's default 0.3 if absent)."""
    import yaml

    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    for component in config.get("pipeline") or []:
        if component.get("name") == "FallbackClassifier":
            return float(component.get("threshold", 0.3))
    return 0.3


def faq_answer_thresholds(faq_action: Path) -> tuple[float, float, str]:
    """(min confidence, min margin over the runner-up, where they came from) of action_answer_faq.

    Read from the module-level constants MIN_CONFIDENCE / MIN_MARGIN in actions/faq.py without
    importing it (the actions need the main venv); 0.5 and no margin if they are not exposed.
    """
    found: dict[str, float] = {}
    if faq_action.exists():
        tree = ast.parse(faq_action.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in (
                        "MIN_CONFIDENCE",
                        "MIN_MARGIN",
                    ):
                        found[target.id] = float(node.value.value)
    if "MIN_CONFIDENCE" in found:
        source = f"{faq_action.relative_to(ROOT)} MIN_CONFIDENCE"
        if "MIN_MARGIN" in found:
            source += "/MIN_MARGIN"
        return found["MIN_CONFIDENCE"], found.get("MIN_MARGIN", 0.0), source
    return DEFAULT_FAQ_CONFIDENCE, 0.0, "default 0.5 (actions/faq.py exposes no MIN_CONFIDENCE)"


def normaliser(texts: list[str]) -> tuple[list[str], str]:
    """The gateway's normalisation (bot/text.py for_nlu: NFKC + OpenCC t2s) applied to `texts`.

    Uses opencc when this venv has it; otherwise asks the main venv to run bot.text.for_nlu
    itself; as a last resort NFKC only. Returns the texts and a note saying which was used.
    """
    try:
        import opencc

        converter = opencc.OpenCC("t2s")
        out = [converter.convert(unicodedata.normalize("NFKC", t)) for t in texts]
        return out, "NFKC + opencc t2s (opencc in the Rasa venv)"
    except ImportError:
        pass
    if MAIN_PYTHON.exists():
        code = (
            "import json,sys;from bot.text import for_nlu;"
            "print(json.dumps([for_nlu(t) for t in json.load(sys.stdin)]))"
        )
        proc = subprocess.run(
            [str(MAIN_PYTHON), "-c", code],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if proc.returncode == 0:
            out = json.loads(proc.stdout)
            if len(out) == len(texts):
                return out, "bot.text.for_nlu via .venv (opencc is not in the Rasa venv)"
    out = [unicodedata.normalize("NFKC", t) for t in texts]
    return out, "NFKC only: opencc unavailable, traditional characters NOT converted"


# ------------------------------------------------------------------ parsing


@dataclass
class Prediction:
    """One dev item and what the model made of it."""

    text: str
    label: str
    predicted: str  # faq/<id>, an intent name or nlu_fallback
    intent: str
    intent_confidence: float
    faq_confidence: float | None  # ResponseSelector top confidence when intent == faq
    faq_margin: float | None  # top minus runner-up ResponseSelector confidence
    answered: bool  # the assistant would act on it without asking back
    faq_top3: bool = False  # label among the ResponseSelector's first 3 (faq / fallback turns)

    @property
    def correct(self) -> bool:
        """Top-1 prediction equals the label (nlu_fallback is never correct)."""
        return self.predicted == self.label


def interpret(
    text: str,
    label: str,
    result: dict[str, Any],
    intent_threshold: float,
    faq_min: float,
    faq_margin: float,
) -> Prediction:
    """Turn a Rasa parse result into a Prediction."""
    intent = (result.get("intent") or {}).get("name") or FALLBACK_INTENT
    confidence = float((result.get("intent") or {}).get("confidence") or 0.0)
    predicted, rs_conf, rs_margin = intent, None, None
    selector_ranking = ((result.get("response_selector") or {}).get("faq") or {}).get("ranking")
    top3_keys = [r.get("intent_response_key") for r in (selector_ranking or [])[:3]]
    # faq answers and fallback clarifications both offer the selector's first candidates
    faq_top3 = intent in ("faq", FALLBACK_INTENT) and label in top3_keys
    if intent == "faq":
        selector = (result.get("response_selector") or {}).get("faq") or {}
        response = selector.get("response") or {}
        predicted = response.get("intent_response_key") or "faq"
        rs_conf = float(response.get("confidence") or 0.0)
        ranking = [float(r.get("confidence") or 0.0) for r in selector.get("ranking") or []]
        ranking.sort(reverse=True)
        rs_margin = rs_conf - (ranking[1] if len(ranking) > 1 else 0.0)
    answered = intent != FALLBACK_INTENT and confidence >= intent_threshold
    if intent == "faq":
        answered = answered and rs_conf >= faq_min and rs_margin >= faq_margin
    return Prediction(
        text, label, predicted, intent, confidence, rs_conf, rs_margin, answered, faq_top3
    )


@dataclass
class Parsed:
    """What parse_all returns."""

    results: list[dict[str, Any]]
    known_labels: set[str]  # intents and faq/<id> keys the model's domain knows
    load_seconds: float
    mean_parse_ms: float


async def parse_all(model: Path, texts: list[str]) -> Parsed:
    """Load the model with Rasa's Agent and parse every text."""
    from rasa.core.agent import Agent
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.ERROR)
    configure_structlog(logging.ERROR)
    import jieba

    jieba.setLogLevel(logging.ERROR)
    if str(ROOT) not in sys.path:  # custom components (nlu_components/) load by module path
        sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    agent = Agent.load(str(model))
    loaded = time.perf_counter() - started
    results = []
    started = time.perf_counter()
    for text in texts:
        results.append(await agent.parse_message(text))
    mean_ms = (time.perf_counter() - started) * 1000 / max(len(texts), 1)
    domain = agent.domain
    known = set(domain.intents) if domain else set()
    if domain:
        known |= {k[len("utter_") :] for k in domain.responses if k.startswith("utter_faq/")}
    return Parsed(results, known, loaded, mean_ms)


# ------------------------------------------------------------------ metrics


def macro_f1(predictions: list[Prediction]) -> float:
    """Macro-averaged F1 over the labels of the dev set (a prediction of any other label,
    nlu_fallback included, counts as a miss for the gold label)."""
    labels = sorted({p.label for p in predictions})
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for p in predictions:
        if p.correct:
            tp[p.label] += 1
        else:
            fn[p.label] += 1
            fp[p.predicted] += 1
    scores = []
    for label in labels:
        precision = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        recall = tp[label] / (tp[label] + fn[label]) if tp[label] + fn[label] else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def ratio(part: int, whole: int) -> float:
    """part / whole, 0 for an empty whole."""
    return part / whole if whole else 0.0


def summarise(predictions: list[Prediction]) -> dict[str, Any]:
    """All the figures the benchmark prints."""
    faq = [p for p in predictions if p.label.startswith("faq/")]
    other = [p for p in predictions if not p.label.startswith("faq/")]
    wrong = [p for p in predictions if not p.correct]
    confident_wrong = [p for p in wrong if p.answered]
    pairs: dict[tuple[str, str], list[Prediction]] = defaultdict(list)
    for p in wrong:
        pairs[(p.label, p.predicted)].append(p)
    worst = sorted(
        pairs.items(),
        key=lambda kv: (-len(kv[1]), -max(x.intent_confidence for x in kv[1]), kv[0]),
    )[:15]
    by_topic: dict[str, list[Prediction]] = defaultdict(list)
    for p in faq:
        by_topic[p.label[4:].split("_", 1)[0]].append(p)
    return {
        "items": len(predictions),
        "faq_top1_by_prefix": {
            prefix: {"items": len(items), "top1": ratio(sum(p.correct for p in items), len(items))}
            for prefix, items in sorted(by_topic.items())
        },
        "faq_items": len(faq),
        "intent_items": len(other),
        "faq_top1": ratio(sum(p.correct for p in faq), len(faq)),
        "faq_top3": ratio(sum(p.faq_top3 for p in faq), len(faq)),
        "intent_top1": ratio(sum(p.correct for p in other), len(other)),
        "overall_top1": ratio(sum(p.correct for p in predictions), len(predictions)),
        "macro_f1": macro_f1(predictions),
        "confident_wrong_rate": ratio(len(confident_wrong), len(predictions)),
        "confident_wrong_faq": ratio(
            sum(p.answered for p in wrong if p.label.startswith("faq/")), len(faq)
        ),
        "confident_wrong_intent": ratio(
            sum(p.answered for p in wrong if not p.label.startswith("faq/")), len(other)
        ),
        "fallback_rate": ratio(
            sum(p.intent == FALLBACK_INTENT for p in predictions), len(predictions)
        ),
        "faq_not_answered_rate": ratio(
            sum(p.intent == "faq" and not p.answered for p in predictions), len(predictions)
        ),
        "worst_confusions": [
            {
                "label": label,
                "predicted": predicted,
                "count": len(items),
                "example": items[0].text,
                "max_confidence": round(max(x.intent_confidence for x in items), 3),
                "answered": sum(x.answered for x in items),
            }
            for (label, predicted), items in worst
        ],
        "confident_wrong": [asdict(p) for p in confident_wrong],
    }


def print_report(summary: dict[str, Any], meta: dict[str, Any]) -> None:
    """Human-readable figures."""

    def pct(x: float) -> str:
        return f"{100 * x:6.2f} %"

    print(f"model            {meta['model']}  (loaded in {meta['load_seconds']:.1f} s)")
    print(
        f"dev set          {meta['dev']}: {summary['items']} items "
        f"({summary['faq_items']} FAQ, {summary['intent_items']} other intents)"
    )
    print(f"normalisation    {meta['normalisation']}")
    print(
        f"thresholds       intent >= {meta['intent_threshold']} (config.yml FallbackClassifier); "
        f"FAQ answer >= {meta['faq_threshold']} and margin >= {meta['faq_margin']} "
        f"({meta['faq_threshold_source']})"
    )
    print(f"parse time       {meta['mean_parse_ms']:.1f} ms per message (mean)")
    print()
    print(f"FAQ top-1        {pct(summary['faq_top1'])}   (intent faq and the right faq/<id>)")
    print(
        f"FAQ top-3        {pct(summary['faq_top3'])}   "
        "(right faq/<id> among the selector's first 3, intent faq or nlu_fallback)"
    )
    print(
        f"intent top-1     {pct(summary['intent_top1'])}   (non-FAQ labels; nlu_fallback = wrong)"
    )
    print(f"overall top-1    {pct(summary['overall_top1'])}   goal >= 95 %")
    print(f"macro-F1         {summary['macro_f1']:.4f}     (over the dev set's labels)")
    print(
        f"confident-wrong  {pct(summary['confident_wrong_rate'])}   goal <= 2 %   "
        f"(FAQ {pct(summary['confident_wrong_faq']).strip()}, "
        f"intents {pct(summary['confident_wrong_intent']).strip()})"
    )
    print(f"fallback rate    {pct(summary['fallback_rate'])}   (nlu_fallback predicted)")
    print(
        f"FAQ asked back   {pct(summary['faq_not_answered_rate'])}   "
        "(intent faq but below the answer threshold: candidates shown)"
    )
    by_prefix = ", ".join(
        f"{k} {100 * v['top1']:.0f} % of {v['items']}"
        for k, v in summary["faq_top1_by_prefix"].items()
    )
    print(f"FAQ by id prefix {by_prefix}")
    if meta["labels_unknown_to_model"]:
        unknown = meta["labels_unknown_to_model"]
        print(
            f"WARNING          {len(unknown)} dev labels are not in the model's domain (stale "
            f"training data?), e.g. {', '.join(unknown[:5])}"
        )
    print()
    print("worst confusions (label -> predicted: count, max intent confidence, answered, example)")
    for c in summary["worst_confusions"]:
        print(
            f"  {c['label']} -> {c['predicted']}: {c['count']}, {c['max_confidence']:.2f}, "
            f"{c['answered']}  「{c['example']}」"
        )
    if summary["confident_wrong"]:
        print()
        print("confident-wrong answers")
        for p in summary["confident_wrong"]:
            rs = f" rs={p['faq_confidence']:.2f}" if p["faq_confidence"] is not None else ""
            print(
                f"  {p['label']} -> {p['predicted']} ({p['intent_confidence']:.2f}{rs})  "
                f"「{p['text']}」"
            )


def main() -> int:
    """Parse the arguments, run the benchmark, print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "current.tar.gz")
    parser.add_argument("--dev", type=Path, default=ROOT / "tests" / "nlu" / "dev.yml")
    parser.add_argument(
        "--json",
        nargs="?",
        const=ROOT / "var" / "nlu-bench.json",
        type=Path,
        default=None,
        help="also write a machine-readable summary (default var/nlu-bench.json)",
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # survives the re-exec
    warnings.filterwarnings("ignore")  # third-party deprecation noise; the figures go to stdout
    _reexec_under_rasa_venv()
    logging.basicConfig(level=logging.ERROR)
    import yaml

    model = args.model.resolve()
    if not model.exists():
        print(f"no model at {args.model}: run `make model` first (or pass --model PATH)")
        return 0
    dev = yaml.safe_load(args.dev.read_text(encoding="utf-8")) or []
    texts = [str(item["text"]) for item in dev]
    labels = [str(item["label"]) for item in dev]

    intent_threshold = fallback_threshold(ROOT / "config.yml")
    faq_min, faq_margin, faq_source = faq_answer_thresholds(ROOT / "actions" / "faq.py")
    normalised, note = normaliser(texts)

    os.chdir(ROOT)  # relative paths in the pipeline (e.g. the jieba dictionary)
    parsed = asyncio.run(parse_all(model, normalised))
    results, load_seconds, mean_ms = parsed.results, parsed.load_seconds, parsed.mean_parse_ms
    predictions = [
        interpret(text, label, result, intent_threshold, faq_min, faq_margin)
        for text, label, result in zip(texts, labels, results, strict=True)
    ]
    summary = summarise(predictions)
    meta = {
        "model": str(args.model),
        "model_file": model.name,
        "dev": str(args.dev),
        "normalisation": note,
        "intent_threshold": intent_threshold,
        "faq_threshold": faq_min,
        "faq_margin": faq_margin,
        "faq_threshold_source": faq_source,
        "labels_unknown_to_model": sorted(
            set(labels) - parsed.known_labels if parsed.known_labels else set()
        ),
        "load_seconds": round(load_seconds, 2),
        "mean_parse_ms": round(mean_ms, 2),
    }
    print_report(summary, meta)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {**meta, **summary, "goal": {"top1": 0.95, "confident_wrong": 0.02}}
        args.json.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"\nsummary written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
