"""NLU + answer benchmark: what a citizen would get, turn by turn, from the trained Rasa model and
the same decision the actions take (actions/faq.py `plan_reply`, actions/fallback.py).

    .venv/bin/python bench/nlu.py [--model models/current.tar.gz] [--json [PATH]]
                                  [--no-held-out]   # skip bench/knowledge.py's folds

Every text is normalised as the gateway does (bot/text.py for_nlu), parsed by the model in a
child process under .venv-rasa (Rasa lives there: intent, ranking, cue overrides), then decided
here in the project venv with knowledge.selector — exactly the path of action_answer_faq /
action_clarify. Prints, and exits 0 whatever the figures are:

- dev set (tests/nlu/dev.yml): dialogue intents top-1 / macro-F1 / confident-wrong; FAQ items:
  the selector's rank top-1 / top-3, answered-and-correct, right entry answered or among the
  buttons, confident-wrong, a work order opened for a question;
- held-out protocol and out-of-KB set: bench/knowledge.py, imported and run (folds of the
  entries' own examples; issue 10 goals: answered-and-correct >= 80 %, top-3 >= 97 %,
  confident-wrong <= 2 %, out-of-KB answered <= 5 %);
- multi-turn set (tests/nlu/multiturn.yml): follow-ups with the slots of the previous turn;
- appeals (tests/appeals/dev.yml): appeal -> intake started, question -> answered, mixed ->
  answered with the offer to register, or intake;
- model train time (train.sh writes models/<hash>.train-seconds), Rasa and selector RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench/store.py would shadow the package
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
FALLBACK_INTENT = "nlu_fallback"
INTAKE_INTENTS = ("report_problem", "complain", "suggest", "leave_message")
RSS_GOAL_MB = 1536


# ------------------------------------------------------------------ parsing (Rasa venv)


def rss_mb() -> float:
    """Resident set size of this process now, in MB (VmRSS; the peak where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _parse_all(model: Path, texts: list[str]) -> dict[str, Any]:
    from rasa.core.agent import Agent
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.ERROR)
    configure_structlog(logging.ERROR)
    import jieba

    jieba.setLogLevel(logging.ERROR)
    started = time.perf_counter()
    agent = Agent.load(str(model))
    loaded = time.perf_counter() - started
    results = []
    started = time.perf_counter()
    for text in texts:
        parsed = await agent.parse_message(text)
        results.append(
            {
                "intent": (parsed.get("intent") or {}).get("name") or FALLBACK_INTENT,
                "confidence": float((parsed.get("intent") or {}).get("confidence") or 0.0),
                "ranking": [
                    {"name": r.get("name"), "confidence": float(r.get("confidence") or 0.0)}
                    for r in parsed.get("intent_ranking") or []
                ],
            }
        )
    mean_ms = (time.perf_counter() - started) * 1000 / max(len(texts), 1)
    return {
        "results": results,
        "load_seconds": round(loaded, 2),
        "mean_parse_ms": round(mean_ms, 2),
        "rss_mb": round(rss_mb(), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "intents": sorted(agent.domain.intents) if agent.domain else [],
    }


def parse_only(model: Path, inp: Path, out: Path) -> int:
    """Child-process mode (.venv-rasa): parse the texts of `inp`, write the results to `out`."""
    os.chdir(ROOT)  # relative paths in the pipeline (the jieba dictionary)
    texts = json.loads(inp.read_text(encoding="utf-8"))
    payload = asyncio.run(_parse_all(model, texts))
    out.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return 0


def parse_with_rasa(model: Path, texts: list[str], workdir: Path) -> dict[str, Any]:
    """Run parse_only under .venv-rasa for `texts` (deduplicated by the caller)."""
    workdir.mkdir(parents=True, exist_ok=True)
    inp, out = workdir / "nlu-bench-texts.json", workdir / "nlu-bench-parsed.json"
    inp.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    cmd = [str(RASA_PYTHON), str(Path(__file__).resolve()), "--parse-only", str(inp), str(out)]
    subprocess.run([*cmd, "--model", str(model)], cwd=ROOT, env=env, check=True)
    return json.loads(out.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ one turn, as the actions do


@dataclass
class State:
    """The slots a conversation carries between turns."""

    last_faq_id: str | None = None
    last_question: str | None = None
    clarified: bool = False

    def reset(self, clarified: bool = False) -> None:
        """Forget the last entry (after a hand-off, an intake, a question back)."""
        self.last_faq_id, self.last_question, self.clarified = None, None, clarified


@dataclass
class Outcome:
    """What the citizen got for one message."""

    kind: str  # answer, aspect, aspect_unknown, clarify, none, stale, intake, handoff, intent:<x>
    answered_id: str | None = None
    shown_ids: list[str] = field(default_factory=list)  # entries answered or offered as buttons
    offer_intake: bool = False


def turn(text: str, parsed: dict[str, Any], state: State, selector: Any, day: date) -> Outcome:
    """The reply to one message: Rasa's rules on the parsed intent, then the action's decision.
    Updates `state` as the actions' slot events would."""
    from actions.fallback import answers_directly, choices_for
    from actions.faq import answer_in_appeal, plan_reply

    intent = parsed["intent"]
    ranking = parsed["ranking"]
    if intent == "request_human" or (intent == FALLBACK_INTENT and state.clarified):
        state.reset()
        return Outcome("handoff")
    if intent in INTAKE_INTENTS:
        # rules: report_problem / complain / suggest -> action_answer_in_appeal -> the form
        entry = (
            None
            if intent == "leave_message"
            else answer_in_appeal(text, selector=selector, day=day)
        )
        state.reset()
        if entry is not None:
            state.last_faq_id, state.last_question = entry.id, entry.question
            return Outcome("intake", entry.id, [entry.id], offer_intake=True)
        return Outcome("intake")
    if intent not in ("faq", FALLBACK_INTENT):
        state.clarified = False
        return Outcome(f"intent:{intent}")
    plan = plan_reply(
        text,
        selector=selector,
        day=day,
        last_faq_id=state.last_faq_id,
        last_question=state.last_question,
        intent_ranking=ranking,
    )
    diet = [r for r in ranking if r["name"] != FALLBACK_INTENT]
    if intent == FALLBACK_INTENT and plan.kind != "intake" and not answers_directly(plan, diet):
        buttons = choices_for(plan, diet)
        by_question = {e.question: e.id for e in selector.kb}
        shown = [by_question[b["payload"]] for b in buttons if b["payload"] in by_question]
        state.reset(clarified=True)
        return Outcome("clarify", shown_ids=shown)
    if plan.kind == "intake":
        state.reset()
        return Outcome("intake")
    entry = plan.entry if plan.kind in ("answer", "aspect", "aspect_unknown") else None
    state.last_faq_id = entry.id if entry else None
    state.last_question = entry.question if entry else None
    state.clarified = False
    shown = [entry.id] if entry else [e.id for e in plan.candidates]
    # aspect_unknown: the entry's whole answer, with a note that it does not say what was asked
    answered = entry.id if entry else None
    return Outcome(plan.kind, answered, shown, plan.offer_intake)


# ------------------------------------------------------------------ metrics


def ratio(part: int, whole: int) -> float:
    """part / whole, 0 for an empty whole."""
    return part / whole if whole else 0.0


def macro_f1(pairs: list[tuple[str, str]]) -> float:
    """Macro-F1 over the gold labels of (gold, predicted) pairs."""
    labels = sorted({g for g, _ in pairs})
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for gold, pred in pairs:
        if gold == pred:
            tp[gold] += 1
        else:
            fn[gold] += 1
            fp[pred] += 1
    scores = []
    for label in labels:
        p = ratio(tp[label], tp[label] + fp[label])
        r = ratio(tp[label], tp[label] + fn[label])
        scores.append(2 * p * r / (p + r) if p + r else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def dev_figures(dev: list[dict], parsed: dict[str, dict], selector: Any, day: date) -> dict:
    """Dialogue intents and FAQ answers on the dev set (each item a first message)."""
    faq = [d for d in dev if d["label"].startswith("faq/")]
    other = [d for d in dev if not d["label"].startswith("faq/")]
    intent_pairs = [(d["label"], parsed[d["norm"]]["intent"]) for d in other]
    # acted on a wrong intent: neither right nor asked back (nlu_fallback)
    confident_wrong_intents = [(g, p) for g, p in intent_pairs if p not in (g, FALLBACK_INTENT)]
    outcomes: Counter[str] = Counter()
    answered_right = shown_right = answered_wrong = rank1 = rank3 = 0
    wrong_examples: list[str] = []
    for d in faq:
        gold = d["label"][4:]
        ranked = [c.entry.id for c in selector.rank(d["norm"], k=3, today=day)]
        rank1 += bool(ranked) and ranked[0] == gold
        rank3 += gold in ranked
        out = turn(d["norm"], parsed[d["norm"]], State(), selector, day)
        outcomes[out.kind if not out.kind.startswith("intent:") else "other intent"] += 1
        answered_right += out.answered_id == gold
        shown_right += gold in out.shown_ids
        if out.answered_id and out.answered_id != gold:
            answered_wrong += 1
            wrong_examples.append(f"{gold} -> {out.answered_id} 「{d['text']}」")
    return {
        "items": len(dev),
        "intent_items": len(other),
        "intent_top1": ratio(sum(g == p for g, p in intent_pairs), len(other)),
        "intent_macro_f1": macro_f1(intent_pairs),
        "intent_confident_wrong": ratio(len(confident_wrong_intents), len(other)),
        "intent_confusions": Counter(f"{g} -> {p}" for g, p in intent_pairs if g != p).most_common(
            10
        ),
        "faq_items": len(faq),
        "faq_rank_top1": ratio(rank1, len(faq)),
        "faq_rank_top3": ratio(rank3, len(faq)),
        "faq_answered_correct": ratio(answered_right, len(faq)),
        "faq_shown_right": ratio(shown_right, len(faq)),
        "faq_confident_wrong": ratio(answered_wrong, len(faq)),
        "faq_outcomes": dict(outcomes),
        "faq_wrong_examples": wrong_examples[:10],
    }


def multiturn_figures(convs: list[dict], parsed: dict, selector: Any, day: date) -> dict:
    """Turn accuracy of the multi-turn set, first turns and follow-ups apart."""
    ok_first = ok_follow = n_first = n_follow = by_button = 0
    misses: list[str] = []
    for conv in convs:
        state = State()
        for i, t in enumerate(conv["turns"]):
            out = turn(t["norm"], parsed[t["norm"]], state, selector, day)
            expect = t["expect"]
            if expect in ("handoff", "intake", "none"):
                good = out.kind == expect
            else:
                good = out.answered_id == expect
                if out.kind == "clarify" and expect in out.shown_ids:
                    # the citizen presses the right button: that entry is answered and
                    # remembered, as action_answer_faq does for the button's question
                    entry = selector.kb.get(expect)
                    state.reset()
                    state.last_faq_id, state.last_question = entry.id, entry.question
                    by_button += 1
                    good = True
            if i == 0:
                n_first += 1
                ok_first += good
            else:
                n_follow += 1
                ok_follow += good
            if not good:
                got = out.answered_id or out.kind
                misses.append(f"{conv['name']}: 「{t['text']}」 expected {expect}, got {got}")
    return {
        "conversations": len(convs),
        "turns": n_first + n_follow,
        "turn_accuracy": ratio(ok_first + ok_follow, n_first + n_follow),
        "first_turn_accuracy": ratio(ok_first, n_first),
        "followup_accuracy": ratio(ok_follow, n_follow),
        "right_by_button": by_button,
        "misses": misses,
    }


def appeal_figures(appeals: dict, parsed: dict, selector: Any, day: date) -> dict:
    """Appeal -> intake, question -> answer, mixed -> answer + offer (or intake)."""

    def kinds(items: list[dict]) -> tuple[Counter[str], list[Outcome]]:
        outs = [turn(i["norm"], parsed[i["norm"]], State(), selector, day) for i in items]
        return Counter(o.kind if not o.kind.startswith("intent:") else "other" for o in outs), outs

    app_kinds, app_outs = kinds(appeals.get("appeals") or [])
    q_kinds, _ = kinds(appeals.get("questions") or [])
    mixed = appeals.get("mixed") or []
    m_kinds, m_outs = kinds(mixed)
    n_app, n_q = sum(app_kinds.values()), sum(q_kinds.values())
    return {
        "appeals": n_app,
        "appeal_intake": ratio(app_kinds["intake"], n_app),
        "appeal_faq_answer": ratio(app_kinds["answer"] + app_kinds["aspect"], n_app),
        "appeal_answer_then_intake": ratio(
            sum(o.kind == "intake" and o.answered_id is not None for o in app_outs), n_app
        ),
        "appeal_outcomes": dict(app_kinds),
        "questions": n_q,
        "question_answered": ratio(q_kinds["answer"] + q_kinds["aspect"], n_q),
        "question_intake": ratio(q_kinds["intake"], n_q),
        "question_outcomes": dict(q_kinds),
        "mixed": len(mixed),
        "mixed_answer_and_offer": ratio(
            sum(o.answered_id is not None and o.offer_intake for o in m_outs), len(mixed)
        ),
        "mixed_intake": ratio(m_kinds["intake"], len(mixed)),
        "mixed_outcomes": dict(m_kinds),
    }


def train_seconds(model: Path) -> float | None:
    """Seconds of the `rasa train` that made `model` (written by scripts/train.sh)."""
    marker = model.resolve().with_suffix("").with_suffix(".train-seconds")
    try:
        return float(marker.read_text().strip())
    except (OSError, ValueError):
        return None


def held_out_figures(json_path: Path) -> dict | None:
    """bench/knowledge.py's held-out protocol, run in this process (it prints as it goes)."""
    import bench.knowledge as knowledge_bench

    argv = sys.argv
    sys.argv = [str(ROOT / "bench" / "knowledge.py"), "--json", str(json_path)]
    try:
        knowledge_bench.main()
    finally:
        sys.argv = argv
    return json.loads(json_path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ report


def pc(x: float | None) -> str:
    """A share as a percentage."""
    return "   —   " if x is None else f"{100 * x:5.1f} %"


def print_report(r: dict) -> None:
    """Human-readable figures."""
    m = r["meta"]
    print()
    print(
        f"model            {m['model']}  (loaded in {m['load_seconds']} s, "
        f"parse {m['mean_parse_ms']} ms/message)"
    )
    ts = m["train_seconds"]
    print(f"rasa train       {'unknown' if ts is None else f'{ts:.0f} s'}  (goal <= 600 s)")
    print(
        f"RSS              Rasa {m['rasa_rss_mb']:.0f} MB + selector {m['selector_rss_mb']:.0f} MB"
        f" = {m['rasa_rss_mb'] + m['selector_rss_mb']:.0f} MB  (goal <= {RSS_GOAL_MB} MB)"
    )
    print(f"selector build   {m['selector_build_seconds']:.1f} s for {m['kb_entries']} entries")
    d = r["dev"]
    print(
        f"\ndev set          {d['items']} items ({d['faq_items']} FAQ, "
        f"{d['intent_items']} dialogue intents)"
    )
    print(
        f"  intents        top-1 {pc(d['intent_top1'])}, macro-F1 {d['intent_macro_f1']:.3f}, "
        f"acted on a wrong intent {pc(d['intent_confident_wrong'])}"
    )
    print(
        f"  FAQ rank       top-1 {pc(d['faq_rank_top1'])}, top-3 {pc(d['faq_rank_top3'])} "
        "(selector ranking)"
    )
    print(
        f"  FAQ answers    answered-and-correct {pc(d['faq_answered_correct'])}, right entry "
        f"answered or a button {pc(d['faq_shown_right'])}, confident-wrong "
        f"{pc(d['faq_confident_wrong'])}"
    )
    print(f"  FAQ outcomes   {d['faq_outcomes']}")
    print(f"  intent misses  {d['intent_confusions']}")
    mt = r["multiturn"]
    print(
        f"\nmulti-turn       {mt['conversations']} conversations, {mt['turns']} turns: "
        f"{pc(mt['turn_accuracy'])} right (first turns {pc(mt['first_turn_accuracy'])}, "
        f"follow-ups {pc(mt['followup_accuracy'])}); {mt['right_by_button']} of the right "
        "turns through a candidate button"
    )
    for miss in mt["misses"]:
        print(f"  miss  {miss}")
    a = r.get("appeals")
    if a:
        print(
            f"\nappeals          {a['appeals']} appeals: intake started {pc(a['appeal_intake'])} "
            f"(goal >= 85 %), an FAQ answer {pc(a['appeal_faq_answer'])} (goal <= 5 %)"
        )
        print(
            f"                 outcomes {a['appeal_outcomes']}; an answer before the intake "
            f"{pc(a['appeal_answer_then_intake'])}"
        )
        print(
            f"questions        {a['questions']}: answered {pc(a['question_answered'])}, "
            f"work order opened {pc(a['question_intake'])}; {a['question_outcomes']}"
        )
        print(
            f"mixed            {a['mixed']}: answer + offer to register "
            f"{pc(a['mixed_answer_and_offer'])}, intake {pc(a['mixed_intake'])}; "
            f"{a['mixed_outcomes']}"
        )
    h = r.get("held_out")
    if h:
        held, ookb = h.get("held_out") or {}, h.get("out_of_kb") or {}
        lat = h.get("latency") or {}
        print(
            f"\nheld-out protocol (bench/knowledge.py, {h.get('date')}, {held.get('n')} items):"
            f" top-1 {pc(held.get('top1'))}, top-3 {pc(held.get('top3'))} (goal 97 %), "
            f"answered-and-correct {pc(held.get('answered_and_correct'))} (goal 80 %), "
            f"confident-wrong {pc(held.get('confident_wrong'))} (goal 2 %), right answered or "
            f"offered {pc(held.get('right_answered_or_offered'))}"
        )
        print(
            f"out-of-KB ({ookb.get('n')}): answered anyway {pc(ookb.get('answered'))} "
            f"(goal 5 %), clarify {pc(ookb.get('clarify'))}, none {pc(ookb.get('none'))}"
        )
        if lat:
            print(
                f"selection latency p50 {lat.get('p50_ms', 0):.0f} ms, "
                f"p95 {lat.get('p95_ms', 0):.0f} ms (goal p95 <= 100 ms)"
            )


def load_items(args: argparse.Namespace) -> tuple[list, list, dict]:
    """The dev set, the multi-turn set and the appeal set (when present)."""
    import yaml

    dev = yaml.safe_load(args.dev.read_text(encoding="utf-8")) or []
    convs = yaml.safe_load(args.multiturn.read_text(encoding="utf-8")) or []
    appeals = {}
    if args.appeals.exists():
        appeals = yaml.safe_load(args.appeals.read_text(encoding="utf-8")) or {}
    return dev, convs, appeals


def main() -> int:
    """Parse the arguments, run the benchmark, print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "current.tar.gz")
    parser.add_argument("--dev", type=Path, default=ROOT / "tests" / "nlu" / "dev.yml")
    parser.add_argument("--multiturn", type=Path, default=ROOT / "tests" / "nlu" / "multiturn.yml")
    parser.add_argument("--appeals", type=Path, default=ROOT / "tests" / "appeals" / "dev.yml")
    parser.add_argument("--no-held-out", action="store_true", help="skip bench/knowledge.py")
    parser.add_argument("--parse-only", nargs=2, type=Path, metavar=("IN", "OUT"))
    parser.add_argument(
        "--json", nargs="?", const=ROOT / "var" / "nlu-bench.json", type=Path, default=None
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.parse_only:
        return parse_only(args.model.resolve(), *args.parse_only)
    if not args.model.exists():
        print(f"no model at {args.model}: run `make model` first (or pass --model PATH)")
        return 0

    from bot.text import for_nlu
    from knowledge.selector import get_selector, local_today

    dev, convs, appeals = load_items(args)
    items = [*dev, *(t for c in convs for t in c["turns"])]
    items += [i for part in appeals.values() for i in part or []]
    for item in items:
        item["norm"] = for_nlu(str(item["text"]))
    texts = sorted({i["norm"] for i in items})
    print(f"parsing {len(texts)} texts with {args.model} (Rasa venv) …", flush=True)
    rasa = parse_with_rasa(args.model, texts, ROOT / "var")
    parsed = dict(zip(texts, rasa["results"], strict=True))

    started = time.perf_counter()
    selector = get_selector()
    build = time.perf_counter() - started
    day = local_today()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "dev": dev_figures(dev, parsed, selector, day),
        "multiturn": multiturn_figures(convs, parsed, selector, day),
        "appeals": appeal_figures(appeals, parsed, selector, day) if appeals else None,
    }
    report["meta"] = {
        "model": str(args.model),
        "model_file": args.model.resolve().name,
        "load_seconds": rasa["load_seconds"],
        "mean_parse_ms": rasa["mean_parse_ms"],
        "train_seconds": train_seconds(args.model),
        "rasa_rss_mb": rasa["rss_mb"],
        "rasa_peak_rss_mb": rasa["peak_rss_mb"],
        "selector_rss_mb": rss_mb(),
        "selector_build_seconds": build,
        "kb_entries": len(selector.kb),
    }
    if not args.no_held_out:
        print("\nheld-out protocol (bench/knowledge.py):", flush=True)
        report["held_out"] = held_out_figures(ROOT / "var" / "knowledge-bench.json")
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"\nsummary written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
