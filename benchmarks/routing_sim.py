"""Does the router learn? A simulated stage where the best model degrades and another improves.

Three models of one tier, equal price and latency, so the only thing that matters is success:

    model      first half   second half
    model-a    0.95         0.70          (the best, then degrades)
    model-b    0.75         0.97          (mediocre, then the best)
    model-c    0.88         0.88          (steady)

Each run starts from a week of recorded history (200 calls per model at the first-half rates),
then makes ``--calls`` routed calls, one every ``--minutes`` of simulated time. Every call asks
the real ``AdaptiveModelRouter`` over a real ``TelemetryStore`` for a model, draws the outcome
from that model's true rate at that moment, and records it back, as a pipeline using
``attune route best --explore`` and ``attune telemetry record`` would. Policies:

* ``oracle``: always the model with the best true rate now (regret 0 by definition);
* ``never-explore``: ``get_best_model(explore=False)``: today's best by the record;
* ``attune-explore``: ``get_best_model(explore=True)`` with the default settings.

Regret is expected regret: the sum over calls of (best true rate − chosen model's true rate),
i.e. the expected number of failures the policy caused that the oracle would have avoided.
Everything is seeded; the figures printed are the mean and spread over ``--seeds`` runs.

Usage::

    python benchmarks/routing_sim.py                 # 4,000 calls, 5 seeds
    python benchmarks/routing_sim.py --calls 2000 --seeds 3 --minutes 20
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from attune_cli.core.registry import Model, Provider, Registry
from attune_cli.core.routing import AdaptiveModelRouter, RoutingSettings
from attune_cli.core.telemetry import CallRecord, TelemetryStore

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY_S = 86_400.0
WORKFLOW, STAGE = "sim", "analysis"

RATES: dict[str, tuple[float, float]] = {
    "model-a": (0.95, 0.70),
    "model-b": (0.75, 0.97),
    "model-c": (0.88, 0.88),
}
REGISTRY = Registry(
    providers={"sim": Provider("sim", api="openai", base_url="http://127.0.0.1:9", key_env=None)},
    models={m: Model(m, "sim", "capable", 1.0, 4.0, 128_000) for m in RATES},
)


@dataclass
class Outcome:
    """What one policy did over one run."""

    regret: float = 0.0
    regret_first_half: float = 0.0
    successes: int = 0
    second_half_on_best: int = 0
    explored: int = 0
    switched_to_b_at: int | None = None  # first call after which b stayed the exploit choice
    dropped_a_at: int | None = None  # calls after the change until a stopped being the choice


def true_rate(model: str, step: int, calls: int) -> float:
    first, second = RATES[model]
    return first if step < calls // 2 else second


def warm_history(store: TelemetryStore, rng: random.Random) -> None:
    """A week of history before the run, at the first-half rates."""
    records = []
    for model, (rate, _) in RATES.items():
        for i in range(200):
            records.append(
                CallRecord(
                    workflow=WORKFLOW,
                    stage=STAGE,
                    model=model,
                    provider="sim",
                    tier="capable",
                    success=rng.random() < rate,
                    ts=START - 7 * DAY_S + i * (7 * DAY_S / 200) + rng.random(),
                    latency_ms=1500.0,
                    cost_usd=0.004,
                )
            )
    store.record_many(records)


def run(
    policy: str, seed: int, calls: int, step_s: float, settings: RoutingSettings, folder: Path
) -> Outcome:
    now = [START]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    outcome_rng = random.Random(seed)
    path = folder / f"{policy}-{seed}.db"
    result = Outcome()
    with TelemetryStore(path, clock=clock) as store:
        warm_history(store, random.Random(seed + 10_000))
        router = AdaptiveModelRouter(
            store, REGISTRY, settings, clock=clock, rng=random.Random(seed + 20_000)
        )
        b_streak_start: int | None = None
        for step in range(calls):
            rates = {m: true_rate(m, step, calls) for m in RATES}
            best_rate = max(rates.values())
            if policy == "oracle":
                chosen = max(rates, key=lambda m: rates[m])
                exploit = chosen
            else:
                decision = router.get_best_model(
                    WORKFLOW, STAGE, explore=policy == "attune-explore"
                )
                chosen, exploit = decision.chosen, decision.best or decision.chosen
                result.explored += decision.explored
            if step >= calls // 2 and exploit != "model-a" and result.dropped_a_at is None:
                result.dropped_a_at = step - calls // 2
            if exploit == "model-b":
                b_streak_start = step if b_streak_start is None else b_streak_start
            else:
                b_streak_start = None
            success = outcome_rng.random() < rates[chosen]
            regret = best_rate - rates[chosen]
            result.regret += regret
            if step < calls // 2:
                result.regret_first_half += regret
            elif rates[chosen] == best_rate:
                result.second_half_on_best += 1
            result.successes += success
            if policy != "oracle":
                store.record(
                    CallRecord(
                        workflow=WORKFLOW,
                        stage=STAGE,
                        model=chosen,
                        provider="sim",
                        tier="capable",
                        success=success,
                        ts=now[0],
                        error_kind=None if success else "server_error",
                        latency_ms=1500.0,
                        cost_usd=0.004,
                    )
                )
            now[0] += step_s
        if b_streak_start is not None and b_streak_start >= calls // 2:
            result.switched_to_b_at = b_streak_start - calls // 2
    return result


def summarise(name: str, outcomes: list[Outcome], calls: int) -> str:
    regrets = [o.regret for o in outcomes]
    first = statistics.mean(o.regret_first_half for o in outcomes)
    on_best = statistics.mean(o.second_half_on_best for o in outcomes) / (calls - calls // 2)
    success = statistics.mean(o.successes for o in outcomes) / calls
    explored = statistics.mean(o.explored for o in outcomes) / calls
    switched = [o.switched_to_b_at for o in outcomes if o.switched_to_b_at is not None]
    lag = (
        f"{statistics.median(switched):,.0f} calls after the change ({len(switched)}/"
        f"{len(outcomes)} runs)"
        if switched
        else f"never (0/{len(outcomes)} runs)"
    )
    dropped = [o.dropped_a_at for o in outcomes if o.dropped_a_at is not None]
    drop = f"{statistics.median(dropped):,.0f}" if dropped else "never"
    spread = statistics.stdev(regrets) if len(regrets) > 1 else 0.0
    return (
        f"{name:<15} regret {statistics.mean(regrets):7.1f} ± {spread:5.1f} "
        f"(first half {first:5.1f})  success {success:6.2%}  "
        f"2nd half on best {on_best:6.1%}  explored {explored:5.1%}  a dropped after {drop} "
        f"calls  b adopted: {lag}\n{'':<15} regret per seed: "
        + ", ".join(f"{r:.0f}" for r in regrets)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4000, help="routed calls per run")
    parser.add_argument("--seeds", type=int, default=5, help="runs per policy")
    parser.add_argument(
        "--minutes", type=float, default=15.0, help="simulated minutes between calls"
    )
    parser.add_argument("--explore-share", type=float, default=None)
    parser.add_argument("--half-life-days", type=float, default=None)
    parser.add_argument("--demote-margin", type=float, default=None)
    args = parser.parse_args(argv)

    settings = RoutingSettings()
    if args.explore_share is not None:
        settings = replace(settings, explore_share=args.explore_share)
    if args.half_life_days is not None:
        settings = replace(settings, half_life_days=args.half_life_days or None)
    if args.demote_margin is not None:
        settings = replace(settings, demote_margin=args.demote_margin)
    days = args.calls * args.minutes / 60 / 24
    print(
        f"{args.calls:,} calls, one every {args.minutes:g} min ({days:.1f} simulated days; the "
        f"change at day {days / 2:.1f}), {args.seeds} seeds"
    )
    print(
        f"settings: window {settings.window_days} d, half-life {settings.half_life_days} d, "
        f"min calls {settings.min_calls}, explore share {settings.explore_share}, "
        f"demotion on the newest {settings.recent_calls} calls (margin {settings.demote_margin})"
    )
    started = time.perf_counter()
    results: dict[str, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="attune-sim-") as tmp:
        for policy in ("oracle", "never-explore", "attune-explore"):
            results[policy] = [
                run(policy, seed, args.calls, args.minutes * 60, settings, Path(tmp))
                for seed in range(args.seeds)
            ]
            print(summarise(policy, results[policy], args.calls), flush=True)
    never = statistics.mean(o.regret for o in results["never-explore"])
    explore = statistics.mean(o.regret for o in results["attune-explore"])
    ratio = explore / never if never else float("nan")
    print(
        f"attune-explore regret is {ratio:.0%} of never-explore's "
        f"({explore:.1f} vs {never:.1f} expected failures avoidable by the oracle); "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
