"""The market simulation of ``routing_sim.py`` with attune's router called in-process.

For iterating on the routing policy: the same worlds (seeds, outcome draws, seeded week), the
same reference policies and targets, and attune's own code on a real SQLite store, but without
a subprocess per step, so a scenario of 240 hours takes seconds instead of many minutes on a
loaded machine. Each hour it does what the CLI does:

* ``route best --explore``: ``AdaptiveModelRouter.get_best_model(..., explore=True)`` with the
  sim's ``config.toml``, only the sim's provider configured, the clock at the hour and
  ``random.Random(ATTUNE_SEED)`` (the seed string ``routing_sim.py`` passes);
* ``telemetry record``: ``TelemetryStore.record`` of the same ``CallRecord`` the CLI builds
  (registry defaults, ``--status 503`` for outages, ``--error-kind missing_key`` unserved).

It is not the acceptance run: that is ``routing_sim.py``, which drives the installed CLI. On
the code before the fallback fix it gave the CLI run's regrets over seeds 0-3 (means 28.0,
17.3 and 22.9, outage median 15.2, seed 1's 45 during the outage): both read the same store
with the same code. A difference means the CLI path does something the router alone does not.

Usage::

    python benchmarks/routing_sim_inprocess.py                      # 3 scenarios x seeds 0-3
    python benchmarks/routing_sim_inprocess.py --scenario outage --first-seed 1 --seeds 1 -v
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import routing_sim as sim

from attune_cli.core.routing.router import AdaptiveModelRouter
from attune_cli.core.routing.settings import RoutingSettings
from attune_cli.core.telemetry.records import CallRecord, with_registry_defaults
from attune_cli.core.telemetry.sqlite import TelemetryStore
from attune_cli.core.workspace import Workspace


def _fixed(at: float) -> Callable[[], float]:
    return lambda: at


def run_attune(world: sim.World, home: Path, verbose: bool = False) -> sim.Trace:
    """Route and record hour by hour in-process, as ``routing_sim.run_attune`` does via the CLI."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(sim.CONFIG_TOML)
    saved = {key: os.environ.get(key) for key in ("ATTUNE_HOME", "HOME", sim.SIM_KEY_ENV)}
    os.environ.update(
        {"ATTUNE_HOME": str(home), "HOME": str(home), sim.SIM_KEY_ENV: "sim-not-a-real-key"}
    )
    try:
        workspace = Workspace.load()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    registry = workspace.registry
    settings = RoutingSettings.from_config(workspace.config, workspace.paths.config_file)
    clock = [float(sim.START)]
    store = TelemetryStore(home / "telemetry.db", clock=lambda: clock[0])

    def record(model: str, ts: float, outcome: sim.Outcome) -> None:
        clock[0] = ts
        common = {"workflow": sim.WORKFLOW, "stage": sim.STAGE, "model": model, "ts": ts}
        if outcome is sim.Outcome.SUCCESS or outcome is sim.Outcome.QUALITY_FAILURE:
            call = CallRecord(
                success=outcome is sim.Outcome.SUCCESS,
                latency_ms=sim.LATENCY_MS,
                input_tokens=sim.INPUT_TOKENS,
                output_tokens=sim.OUTPUT_TOKENS,
                **common,  # type: ignore[arg-type]
            )
        elif outcome is sim.Outcome.OUTAGE:
            call = CallRecord(
                success=False,
                status=503,
                latency_ms=sim.OUTAGE_LATENCY_MS,
                **common,  # type: ignore[arg-type]
            )
        else:
            call = CallRecord(
                success=False,
                error_kind="missing_key",
                latency_ms=1,
                **common,  # type: ignore[arg-type]
            )
        store.record(with_registry_defaults(call, registry))

    for past in world.history:
        outcome = sim.Outcome.SUCCESS if past.success else sim.Outcome.QUALITY_FAILURE
        record(past.model, past.ts, outcome)
    trace = sim.Trace("attune")
    for hour in range(world.hours):
        hour_ts = float(sim.START + hour * sim.HOUR_S)
        clock[0] = hour_ts
        router = AdaptiveModelRouter(
            store,
            registry,
            settings,
            clock=_fixed(hour_ts),
            rng=random.Random(f"{world.scenario.name}-{world.seed}-{hour}"),
            configured=frozenset({"sim"}),
        )
        decision = router.get_best_model(sim.WORKFLOW, sim.STAGE, explore=True)
        model = decision.chosen
        if model is None:
            raise RuntimeError(f"hour {hour}: nobody may be called ({decision.reason})")
        trace.explored_hours += decision.explored
        trace.add(world, hour, model)
        outcomes = world.outcomes(model, hour)
        if verbose:
            calls = "".join("s" if o is sim.Outcome.SUCCESS else "f" for o in outcomes)
            seen = " ".join(
                f"{c.model}:{(c.success_lower_bound or 0.0):.3f}"
                f"[{','.join(str(r.reason) for r in c.rejections) or 'eligible'}]"
                for c in decision.candidates
                if c.has_history
            )
            print(
                f"h{hour:3d} {world.scenario.phase(hour, world.hours):6} {model}"
                f"{' (explored)' if decision.explored else ''} {calls} "
                f"regret {world.regret(model, hour):.2f} | {seen}"
            )
        for n, outcome in enumerate(outcomes):
            record(model, hour_ts + 60 * (n + 1), outcome)
    store.conn.close()
    return trace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join((__doc__ or "").split("\n\n")[1:]),
    )
    parser.add_argument("--hours", type=int, default=240, help="simulated hours per run (240)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per scenario (4)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (0)")
    parser.add_argument("--calls-per-hour", type=int, default=3, help="calls each hour (3)")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(sim.SCENARIOS), help="repeatable"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every hour")
    args = parser.parse_args(argv)
    if args.hours < 10 or args.calls_per_hour < 1 or args.seeds < 1:
        parser.error("--hours must be at least 10; --calls-per-hour and --seeds at least 1")
    folder = Path(tempfile.mkdtemp(prefix="attune-sim-inprocess-"))
    all_met = True
    try:
        for name in args.scenario or list(sim.SCENARIOS):
            regrets: dict[str, list[float]] = {name_of: [] for name_of in sim.POLICIES}
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                world = sim.World.draw(sim.SCENARIOS[name], seed, args.hours, args.calls_per_hour)
                traces = {"attune": run_attune(world, folder / f"{name}-{seed}", args.verbose)}
                for policy in sim.reference_policies(world):
                    traces[policy.name] = sim.run_reference(policy, world)
                ok, text = sim.seed_verdict(sim.RunResult(name, seed, traces, 0.0))
                phases = ", ".join(
                    f"{phase} {value:.1f}"
                    for phase, value in traces["attune"].regret_by_phase.items()
                )
                print(f"{name} seed {seed}: {'met ' if ok else 'MISS'} {text}; attune {phases}")
                for name_of, trace in traces.items():
                    regrets[name_of].append(trace.regret)
            expected, comparison = sim.scenario_verdict(name, regrets)
            all_met &= expected
            print(
                f"{name}: "
                + ", ".join(
                    f"{name_of} {statistics.mean(values):.1f} (median "
                    f"{statistics.median(values):.1f})"
                    for name_of, values in regrets.items()
                )
                + f"; target {'met' if expected else 'MISSED'} ({comparison})"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.seeds < 4:
        print("(fewer than 4 seeds: the targets are judged on means over at least 4)")
    met = all_met and args.seeds >= 4
    print("every target met" if met else "a target was missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
