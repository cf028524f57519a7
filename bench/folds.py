"""Fold benchmark: the profile and lead-score folds alone, on decoded events.

Generates a shop, decodes every event once, groups the events by the id they
carry (no identity resolution) and times ``profile.fold`` and
``lead_score.fold`` over every group, the way the runtime folds a customer's
pending events. Best of ``--repeat`` runs, so a busy machine shows less noise;
decoding, identity and the tables are what ``bench.replay`` adds on top.

    python -m bench.folds [--events 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench.common import line, machine, timed
from cdp.demo.generate import GenerateConfig, iter_events
from projections import lead_score, profile
from schemas import AnyEvent, decode


def _groups(events: int) -> list[list[AnyEvent]]:
    by_id: dict[str, list[AnyEvent]] = defaultdict(list)
    for raw in iter_events(GenerateConfig(events=events)):
        event: Any = decode(raw)
        by_id[event.user_id or event.anonymous_id or ""].append(event)
    return list(by_id.values())


def _best(fn: Callable[[], object], repeat: int) -> float:
    return min(timed(fn)[1] for _ in range(repeat))


def run(events: int, repeat: int) -> dict[str, float]:
    groups = _groups(events)
    total = sum(map(len, groups))
    profile_s = _best(lambda: [profile.fold(profile.initial(), g) for g in groups], repeat)
    lead_s = _best(lambda: [lead_score.fold(lead_score.initial(), g) for g in groups], repeat)
    print(f"fold benchmark on {machine()}: {total:,} events, {len(groups):,} ids, best of {repeat}")
    print(line("profile.fold", total, profile_s))
    print(line("lead_score.fold", total, lead_s))
    print(
        f"per event: profile {profile_s / total * 1e6:.2f} µs, lead {lead_s / total * 1e6:.2f} µs"
    )
    return {"events": total, "profile_s": profile_s, "lead_s": lead_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be at least 1")
    run(args.events, args.repeat)


if __name__ == "__main__":
    main()
