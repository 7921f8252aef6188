"""`python -m knowledge [question ...]`: build the index (embedding and caching whatever is not
cached yet, e.g. at deploy time so the first citizen does not wait) and decide on the questions
given, printing the decision and candidates."""

from __future__ import annotations

import sys
import time

from knowledge.selector import get_selector


def main(argv: list[str]) -> int:
    """Warm the embedding cache and print decisions for the given questions."""
    started = time.perf_counter()
    selector = get_selector()
    print(
        f"index: {len(selector.index)} entries, {len(selector.index.texts)} texts, "
        f"{selector.embedder.embedded} embedded now, {time.perf_counter() - started:.1f} s"
    )
    for text in argv:
        decision = selector.decide(text)
        names = ", ".join(f"{c.entry.id} {c.score:.3f}" for c in decision.candidates)
        print(f"{text} → {decision.kind} ({decision.confidence:.2f}) {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
