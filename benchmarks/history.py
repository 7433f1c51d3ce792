"""A seeded, realistic LLM-call history for benchmarks: the older tool's JSONL and/or a store.

The default history is the one issue 3 measures against: 1,000,000 calls from 5 workflows ×
4 stages × the 6 built-in models, spread over the 7 days before ``--end`` (default: now). Each
(workflow, stage) gives the models different success rates and latencies, so routing has a
real answer to find; cost follows the registry's prices for the call's tokens. The same seed
and end time always give the same calls.

Command line::

    python benchmarks/history.py --out DIR                      # both outputs, 1M calls
    python benchmarks/history.py --rows 100000 --out DIR --format legacy
    python benchmarks/history.py --rows 1000000 --out DIR --format store --seed 7 \\
        --end 2026-01-08T00:00:00Z

Outputs (in DIR):

* ``legacy/usage.YYYY-MM-DD.jsonl`` … ``legacy/usage.jsonl``: the older attune tool's log, one
  file per UTC day, the newest day un-rotated (import with
  ``attune telemetry import DIR/legacy``).
* ``telemetry.db``: an attune store holding the same calls (``ATTUNE_HOME=DIR`` points attune
  at it), with error kinds and HTTP statuses the old format cannot carry.

Python API (other benchmarks reuse it; they sit in this folder, so ``import history`` works
when they run as scripts)::

    from history import HistorySpec, iter_history, write_legacy_jsonl, build_store
    spec = HistorySpec(rows=200_000, seed=3)
    files = write_legacy_jsonl(spec, Path("out/legacy"))
    store_path = build_store(spec, Path("out/telemetry.db"))
    for call in iter_history(spec): ...        # GeneratedCall tuples, oldest first

``WORKFLOWS``, ``STAGES`` and ``MODELS`` list the names used.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

WORKFLOWS: tuple[str, ...] = ("code-review", "doc-gen", "bug-triage", "test-gen", "refactor")
STAGES: tuple[str, ...] = ("analysis", "summarise", "draft", "verify")


class ModelProfile(NamedTuple):
    """How a model behaves in the generated history (before per-stage adjustments)."""

    model: str
    provider: str
    tier: str
    share: float  # relative share of calls
    success: float  # base success probability
    latency_ms: float  # median latency
    input_usd_per_mtok: float
    output_usd_per_mtok: float


# Prices match attune's built-in registry so imported costs look like recorded ones.
MODELS: tuple[ModelProfile, ...] = (
    ModelProfile("claude-haiku-4-5", "anthropic", "cheap", 0.26, 0.930, 900, 1.0, 5.0),
    ModelProfile("gpt-5-mini", "openai", "cheap", 0.22, 0.915, 1100, 0.25, 2.0),
    ModelProfile("claude-sonnet-4-5", "anthropic", "capable", 0.20, 0.970, 2200, 3.0, 15.0),
    ModelProfile("gpt-5", "openai", "capable", 0.16, 0.965, 2600, 1.25, 10.0),
    ModelProfile("claude-opus-4-5", "anthropic", "premium", 0.10, 0.985, 4500, 5.0, 25.0),
    ModelProfile("gpt-5-pro", "openai", "premium", 0.06, 0.980, 9000, 15.0, 120.0),
)

# (error_kind, HTTP status, weight) of a failed call.
FAILURES: tuple[tuple[str, int | None, float], ...] = (
    ("rate_limit", 429, 0.35),
    ("server_error", 500, 0.25),
    ("overloaded", 529, 0.20),
    ("timeout", None, 0.15),
    ("connection", None, 0.05),
)


class GeneratedCall(NamedTuple):
    """One generated call (the fields both outputs share)."""

    ts: float  # epoch seconds, millisecond grid
    workflow: str
    stage: str
    provider: str
    model: str
    tier: str
    success: bool
    error_kind: str | None
    status: int | None
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class HistorySpec:
    """What to generate: how many calls, from which seed, over which days."""

    rows: int = 1_000_000
    seed: int = 7
    days: float = 7.0
    end_ts: float | None = None  # None: now, rounded down to the minute
    workflows: tuple[str, ...] = WORKFLOWS
    stages: tuple[str, ...] = STAGES
    models: tuple[ModelProfile, ...] = MODELS

    def resolved_end_ts(self) -> float:
        """The end of the history, epoch seconds."""
        if self.end_ts is not None:
            return float(self.end_ts)
        return float(int(time.time()) // 60 * 60)


class _StageProfile(NamedTuple):
    weights: list[float]  # cumulative model shares
    success: list[float]
    latency_mu: list[float]
    input_mu: float
    output_mu: float


def _stage_profiles(spec: HistorySpec, rng: random.Random) -> list[_StageProfile]:
    """Per (workflow, stage): each model's adjusted success, latency and share."""
    profiles = []
    for _workflow in spec.workflows:
        for _stage in spec.stages:
            success, latency, shares = [], [], []
            for profile in spec.models:
                # Some stages are hard for some models: a few points of success either way,
                # latency ±40 %, usage share ±50 %.
                success.append(min(0.999, max(0.5, profile.success + rng.uniform(-0.06, 0.03))))
                latency.append(math.log(profile.latency_ms * rng.uniform(0.6, 1.4)))
                shares.append(profile.share * rng.uniform(0.5, 1.5))
            total = sum(shares)
            cumulative, running = [], 0.0
            for share in shares:
                running += share / total
                cumulative.append(running)
            cumulative[-1] = 1.0
            profiles.append(
                _StageProfile(
                    cumulative,
                    success,
                    latency,
                    input_mu=math.log(rng.uniform(800, 6000)),
                    output_mu=math.log(rng.uniform(150, 1500)),
                )
            )
    return profiles


def iter_history(spec: HistorySpec) -> Iterator[GeneratedCall]:
    """The calls of ``spec``, oldest first; the same spec always yields the same calls."""
    rng = random.Random(spec.seed)
    profiles = _stage_profiles(spec, rng)
    pairs = [(w, s) for w in spec.workflows for s in spec.stages]
    end_ms = round(spec.resolved_end_ts() * 1000)
    span_ms = round(spec.days * 86_400_000)
    start_ms = end_ms - span_ms
    step = span_ms / max(spec.rows, 1)
    failure_cum, running = [], 0.0
    for _, _, weight in FAILURES:
        running += weight
        failure_cum.append(running)
    random_ = rng.random
    lognorm = rng.lognormvariate
    models = spec.models
    for index in range(spec.rows):
        ts_ms = start_ms + int((index + random_()) * step)
        pair_index = int(random_() * len(pairs))
        workflow, stage = pairs[pair_index]
        profile = profiles[pair_index]
        pick = random_()
        m = 0
        while profile.weights[m] < pick:
            m += 1
        model = models[m]
        input_tokens = int(math.exp(profile.input_mu + rng.gauss(0, 0.5)))
        output_tokens = int(math.exp(profile.output_mu + rng.gauss(0, 0.6)))
        latency = round(lognorm(profile.latency_mu[m], 0.45), 1)
        if random_() < profile.success[m]:
            success, error_kind, status = True, None, 200
            cost = round(
                (
                    input_tokens * model.input_usd_per_mtok
                    + output_tokens * model.output_usd_per_mtok
                )
                / 1_000_000,
                8,
            )
        else:
            success = False
            f_pick = random_() * running
            f = 0
            while failure_cum[f] < f_pick:
                f += 1
            error_kind, status, _ = FAILURES[f]
            output_tokens = 0
            cost = 0.0
            if error_kind == "timeout":
                latency = 30_000.0
        yield GeneratedCall(
            ts_ms / 1000,
            workflow,
            stage,
            model.provider,
            model.model,
            model.tier,
            success,
            error_kind,
            status,
            latency,
            input_tokens,
            output_tokens,
            cost,
        )


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _iso(ts_ms_total: int) -> str:
    seconds, millis = divmod(ts_ms_total, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def write_legacy_jsonl(spec: HistorySpec, folder: Path) -> list[Path]:
    """Write ``spec``'s calls as the older attune tool's ``usage*.jsonl`` files in ``folder``.

    One file per UTC day (``usage.YYYY-MM-DD.jsonl``), the last day as ``usage.jsonl`` the way
    the old tool rotates. The old format has no error kind or HTTP status: a failure is
    ``"success": false``. Returns the files written, oldest first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("usage*.jsonl"):
        stale.unlink()
    user_id = hashlib.sha256(f"bench-user-{spec.seed}".encode()).hexdigest()[:16]
    last_day = _day(spec.resolved_end_ts() - 0.001)
    written: list[Path] = []
    handle = None
    current_day = None
    buffer: list[str] = []
    try:
        for seq, call in enumerate(iter_history(spec)):
            day = _day(call.ts)
            if day != current_day:
                if handle is not None:
                    handle.write("".join(buffer))
                    buffer.clear()
                    handle.close()
                name = "usage.jsonl" if day == last_day else f"usage.{day}.jsonl"
                path = folder / name
                handle = path.open("w", encoding="utf-8")
                written.append(path)
                current_day = day
            buffer.append(
                f'{{"v":"1.0","ts":"{_iso(round(call.ts * 1000))}","seq":{seq},'
                f'"workflow":"{call.workflow}","stage":"{call.stage}",'
                f'"tier":"{call.tier.upper()}","model":"{call.model}",'
                f'"provider":"{call.provider}","cost":{call.cost_usd!r},'
                f'"tokens":{{"input":{call.input_tokens},"output":{call.output_tokens}}},'
                f'"cache":{{"hit":false}},"duration_ms":{round(call.latency_ms)},'
                f'"user_id":"{user_id}","success":{"true" if call.success else "false"}}}\n'
            )
            if len(buffer) >= 10_000:
                assert handle is not None
                handle.write("".join(buffer))
                buffer.clear()
        if handle is not None:
            handle.write("".join(buffer))
    finally:
        if handle is not None:
            handle.close()
    return written


def history_row(call: GeneratedCall, key: str) -> tuple[object, ...]:
    """A generated call as a row in ``records.COLUMNS`` order, with its identity ``key``."""
    return (
        call.ts,
        call.workflow,
        call.stage,
        call.provider,
        call.model,
        call.tier,
        1 if call.success else 0,
        call.error_kind,
        call.status,
        call.latency_ms,
        call.input_tokens,
        call.output_tokens,
        call.cost_usd,
        1,
        "generated",
        None,  # billing: unknown, as for any call not made by attune
        key,
    )


def build_store(spec: HistorySpec, path: Path) -> Path:
    """Write ``spec``'s calls straight into an attune store at ``path`` (replacing it).

    Uses the store's bulk path (one transaction), so a 1M-call store takes seconds, not the
    minutes a million ``record`` calls would.
    """
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    names: set[tuple[str, str, str]] = set()

    def rows() -> Iterator[tuple[object, ...]]:
        for index, call in enumerate(iter_history(spec)):
            names.add((call.workflow, call.stage, call.model))
            yield history_row(call, f"g{spec.seed:x}-{index:x}")

    with TelemetryStore(path) as store:
        store.conn.execute("PRAGMA cache_size = -65536")
        with store.transaction():
            store.insert_rows(rows())
            store.add_labels(names)
    return path


def _parse_end(text: str | None) -> float | None:
    if text is None:
        return None
    from attune_cli.core.telemetry.records import iso_to_ts

    return iso_to_ts(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="calls to generate")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=float, default=7.0, help="days of history before --end")
    parser.add_argument("--end", default=None, help="ISO-8601 end time (default: now)")
    parser.add_argument(
        "--format",
        choices=("legacy", "store", "both"),
        default="both",
        help="legacy: the old tool's JSONL; store: an attune telemetry.db",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    spec = HistorySpec(rows=args.rows, seed=args.seed, days=args.days, end_ts=_parse_end(args.end))
    if spec.end_ts is None:
        # Pin "now" once so both outputs hold the very same calls.
        spec = HistorySpec(
            rows=args.rows, seed=args.seed, days=args.days, end_ts=spec.resolved_end_ts()
        )
    args.out.mkdir(parents=True, exist_ok=True)
    if args.format in ("legacy", "both"):
        started = time.perf_counter()
        files = write_legacy_jsonl(spec, args.out / "legacy")
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"legacy JSONL: {len(files)} files, {size_mb:.0f} MB in "
            f"{time.perf_counter() - started:.1f} s → {args.out / 'legacy'}",
            file=sys.stderr,
        )
    if args.format in ("store", "both"):
        started = time.perf_counter()
        path = build_store(spec, args.out / "telemetry.db")
        print(
            f"store: {path.stat().st_size / 1e6:.0f} MB in "
            f"{time.perf_counter() - started:.1f} s → {path}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
