"""What zerog adds to a chat request through the 0G Router, measured in process.

Starts a devnet on 127.0.0.1 (its Router in front of its providers), makes a
Router key, then sends the same chat request N times each way, interleaved:

- plain: `requests.Session().post` to ``/router/v1/chat/completions`` with the
  key, reading the JSON answer: what any OpenAI-compatible client pays;
- zerog: `zerog_cli.services.infer.ask` with one long-lived `Context` (a
  service embedding zerog): budget reservation, the request, settlement, the
  inference log and cost rows in one transaction, metrics;
- zerog, fresh context: the same with a new `Context` per request (settings,
  secrets and ledger opened each time: what one `zerog infer` run does, less
  process start-up, which is bench/startup.py's figure).

Prints requests per second and p50/p95 latency of each, and what zerog adds
at p50 (goal: under 15 ms).

    python bench/infer.py [--requests 200] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import bench_devnet

GOAL_MS = 15.0
PROMPT = "Summarise the 0G Router in one sentence, please."


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    import requests

    with tempfile.TemporaryDirectory(prefix="zerog-bench-infer-") as scratch:
        work = Path(scratch)
        with bench_devnet(work) as (info, env):
            no_proxy = {"http": "", "https": ""}
            key = requests.post(
                f"{info.url}/router/devnet/keys", timeout=10, proxies=no_proxy
            ).json()["key"]
            os.environ.update({**env, "ZEROG_ROUTER_API_KEY": key})
            results = run(info.url, key, args.requests, args.max_tokens)
    report(results, args.requests)


def run(base_url: str, key: str, count: int, max_tokens: int) -> dict[str, list[float]]:
    import requests

    from zerog_cli.services.context import Context
    from zerog_cli.services.infer import AskRequest, ask
    from zerog_cli.zerog.compute import chat_request_body

    shared = Context()
    request = AskRequest(prompt=PROMPT, max_tokens=max_tokens, via="router")
    session = requests.Session()
    session.trust_env = False
    url = f"{base_url}/router/v1/chat/completions"
    body = chat_request_body(
        "devnet-echo-1", [{"role": "user", "content": PROMPT}], max_tokens=max_tokens
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def plain() -> None:
        answer = session.post(url, data=body, headers=headers, timeout=30)
        answer.raise_for_status()
        answer.json()

    def zerog_shared() -> None:
        ask(shared, request)

    def zerog_fresh() -> None:
        context = Context()
        try:
            ask(context, request)
        finally:
            context.close()

    calls = {"plain requests": plain, "zerog": zerog_shared, "zerog, fresh context": zerog_fresh}
    for call in calls.values():
        for _ in range(10):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(count):
        for name, call in calls.items():
            samples[name].append(timed(call))
    shared.close()
    return samples


def report(samples: dict[str, list[float]], count: int) -> None:
    base = statistics.median(samples["plain requests"])
    print(f"{count} chat requests each, devnet Router on 127.0.0.1, in process")
    for name, values in samples.items():
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        rps = 1000 / statistics.mean(values)
        added = "" if name == "plain requests" else f"  added at p50 {p50 - base:6.2f} ms"
        print(f"  {name:22} {rps:7.1f} req/s  p50 {p50:6.2f} ms  p95 {p95:6.2f} ms{added}")
    added_p50 = percentile(samples["zerog"], 0.5) - base
    verdict = "met" if added_p50 < GOAL_MS else "NOT met"
    print(f"goal: zerog adds < {GOAL_MS:g} ms at p50 -> {verdict} ({added_p50:.2f} ms)")


if __name__ == "__main__":
    main()
