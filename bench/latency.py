"""Gateway overhead: the same conversations through the gateway's REST channel and straight to
Rasa's REST channel, in one run, with N concurrent simulated citizens. Prints p50/p95/p99 of
both and the gateway/direct ratios. Goal (issue 5): ratio ≤ 1.15 at p50 and p95.

    .venv/bin/python bench/latency.py [--citizens 50] [--rounds 3] [--think 0]

`--think` is the mean pause (seconds, exponential) a citizen takes to read and type between
turns; 0 sends turns back to back, which on a 2-core machine saturates Rasa. Turns the
gateway answered with its apology (Rasa slower than RASA_TIMEOUT) are counted and printed:
they are fast for the wrong reason.

Starts Rasa, the action server and the gateway itself (as the end-to-end tests do), on a
throw-away SQLite database, and stops them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench._stats import pct
from tests.e2e.conftest import start_stack, stop

CONVERSATION = ["你好", "公积金怎么提取", "租房能取公积金吗", "谢谢", "再见"]


APOLOGY_MARK = "暂时无法回答"  # bot.router.APOLOGY: the gateway gave up waiting for Rasa


@dataclass
class Round:
    """Per-turn latencies (ms) and how many turns were the gateway's apology."""

    timings: list[float] = field(default_factory=list)
    apologies: int = 0


async def citizen(
    http: aiohttp.ClientSession, url: str, sender: str, think: float, out: Round
) -> None:
    """One simulated citizen: the whole conversation, one turn after the other."""
    for text in CONVERSATION:
        if think:
            await asyncio.sleep(random.expovariate(1 / think))
        t = time.perf_counter()
        async with http.post(url, json={"sender": sender, "message": text}) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise RuntimeError(f"{url} answered {resp.status}")
        out.timings.append((time.perf_counter() - t) * 1000)
        out.apologies += APOLOGY_MARK in body


async def run_round(url: str, citizens: int, think: float = 0.0) -> Round:
    """`citizens` concurrent conversations against `url`."""
    result = Round()
    connector = aiohttp.TCPConnector(limit=citizens)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(
            *(
                citizen(http, url, f"bench-{uuid.uuid4().hex[:12]}", think, result)
                for _ in range(citizens)
            )
        )
    return result


async def measure(gateway: str, rasa: str, citizens: int, rounds: int, think: float) -> None:
    """Run the rounds, interleaved, and print the figures."""
    direct_url = f"{rasa}/webhooks/rest/webhook"
    gateway_url = f"{gateway}/webhooks/rest/webhook"
    await run_round(direct_url, 5)  # warm-up (model caches, connection pools)
    await run_round(gateway_url, 5)
    direct: list[float] = []
    through: list[float] = []
    apologies = 0
    for _ in range(rounds):  # interleave so drift hits both sides alike
        direct += (await run_round(direct_url, citizens, think)).timings
        r = await run_round(gateway_url, citizens, think)
        through += r.timings
        apologies += r.apologies
    print(
        f"{citizens} concurrent citizens x {len(CONVERSATION)} turns x {rounds} rounds, "
        f"mean think time {think:g} s"
    )
    print(f"{'':12}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for name, values in (("rasa direct", direct), ("gateway", through)):
        print(f"{name:12}{pct(values, 50):10.1f}{pct(values, 95):10.1f}{pct(values, 99):10.1f}")
    for q in (50, 95, 99):
        print(f"ratio gateway/direct p{q}: {pct(through, q) / pct(direct, q):.3f}")
    print(f"gateway turns answered with the apology (Rasa too slow): {apologies}/{len(through)}")
    print("goal: ratio <= 1.15 at p50 and p95")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--citizens", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds between turns")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack, procs = start_stack(Path(tmp), f"sqlite:///{tmp}/bench.db")
        try:
            asyncio.run(measure(stack.gateway, stack.rasa, args.citizens, args.rounds, args.think))
        finally:
            stop(procs)


if __name__ == "__main__":
    main()
