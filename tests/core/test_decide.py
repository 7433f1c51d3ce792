"""``decide``: the routing decision as a pure function of figures, tested without a database."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from attune_cli.core.performance import ModelPerformance
from attune_cli.core.registry import load_registry
from attune_cli.core.routing.decide import REFERENCE_CALL_TOKENS, cap_rejections, decide
from attune_cli.core.routing.decision import Reason, Rejection, RoutingDecision
from attune_cli.core.routing.settings import RoutingSettings

REGISTRY = load_registry({}, Path("config.toml"))
BOTH = frozenset({"anthropic", "openai"})


def perf(
    model: str,
    calls: int = 200,
    failures: int = 0,
    *,
    cost: float | None = 0.002,
    p95: float | None = 1000.0,
    tier: str | None = None,
    rate_limited: int = 0,
    **fields: object,
) -> ModelPerformance:
    """Figures of ``calls`` calls: ``failures`` quality failures, ``rate_limited`` rate limits,
    the rest successes."""
    return ModelPerformance(
        model=model,
        provider=None,
        tier=tier,
        calls=calls,
        successes=calls - failures - rate_limited,
        rate_limited=rate_limited,
        p50_latency_ms=p95,
        p95_latency_ms=p95,
        avg_cost_usd=cost,
        quality_failures=failures,
        **fields,  # type: ignore[arg-type]
    )


def run(
    *performances: ModelPerformance,
    stage: str = "analysis",
    configured: frozenset[str] | None = BOTH,
    seed: int = 0,
    explore: bool = False,
    tier: str | None = None,
    **settings: object,
) -> RoutingDecision:
    return decide(
        performances,
        REGISTRY,
        RoutingSettings(**settings),  # type: ignore[arg-type]
        random.Random(seed),
        workflow="ci",
        stage=stage,
        configured=configured,
        explore=explore,
        tier=tier,
    )


def reasons(decision: RoutingDecision, model: str) -> set[Reason]:
    found = decision.candidate(model)
    assert found is not None, model
    return {r.reason for r in found.rejections}


def test_the_best_eligible_model_by_score_wins() -> None:
    decision = run(perf("gpt-5", failures=2), perf("claude-sonnet-4-5", failures=20))
    assert decision.chosen == "gpt-5" and decision.fallback is False
    assert decision.within_caps


def test_a_cap_is_never_broken_even_by_the_fallback() -> None:
    # Every model with history is over the latency cap; the fallback may choose only a model
    # whose latency is not known to break it.
    decision = run(
        perf("gpt-5", p95=9000.0), perf("claude-sonnet-4-5", p95=8000.0), max_latency_ms=1.0
    )
    assert decision.fallback is True
    assert decision.chosen not in ("gpt-5", "claude-sonnet-4-5")
    chosen = decision.candidate(decision.chosen or "")
    assert chosen is not None and not chosen.has_history and chosen.callable_within_caps
    over = decision.candidate("gpt-5")
    assert over is not None
    assert over.rejections[0] == Rejection(Reason.OVER_LATENCY_CAP, 9000.0, 1.0)


def test_a_zero_cost_cap_chooses_nobody_and_names_the_cap_for_every_model() -> None:
    decision = run(perf("gpt-5"), stage="triage", max_cost_usd=0.0)
    assert decision.chosen is None and decision.within_caps is False
    assert decision.reason.startswith("No model within the caps")
    # Every registry model is listed, each ruled out by the cost cap with its price.
    assert {c.model for c in decision.candidates} >= set(REGISTRY.models)
    for c in decision.candidates:
        assert c.ruled_out_by(Reason.OVER_COST_CAP), c.model
        assert not decision.admissible(c.model)


def test_without_history_the_cost_cap_holds_on_the_registry_price() -> None:
    haiku = REGISTRY.cost_usd("claude-haiku-4-5", *REFERENCE_CALL_TOKENS)
    mini = REGISTRY.cost_usd("gpt-5-mini", *REFERENCE_CALL_TOKENS)
    assert haiku is not None and mini is not None and mini < haiku
    decision = run(stage="triage", max_cost_usd=(mini + haiku) / 2)
    assert decision.chosen == "gpt-5-mini"
    assert reasons(decision, "claude-haiku-4-5") == {Reason.OVER_COST_CAP, Reason.NO_HISTORY}


def test_a_model_of_unknown_price_is_not_provably_within_a_cost_cap() -> None:
    decision = run(perf("llama3.1:8b", cost=None, tier="cheap"), stage="triage", max_cost_usd=1.0)
    assert reasons(decision, "llama3.1:8b") >= {Reason.COST_UNKNOWN}
    assert decision.chosen != "llama3.1:8b"


def test_the_fallback_tries_the_stages_tier_then_cheaper_then_dearer() -> None:
    capable = [m.id for m in REGISTRY.by_tier("capable")]
    cheap = [m.id for m in REGISTRY.by_tier("cheap")]
    # Every capable model is over a latency cap by its history: the cheap tier's first is next.
    slow = [perf(model, p95=9000.0) for model in capable]
    decision = run(*slow, max_latency_ms=5000.0)
    assert decision.chosen == cheap[0]
    assert "the nearest cheap-tier model within the caps" in decision.reason


def test_only_models_of_configured_providers_are_chosen() -> None:
    # The best record is Anthropic's, but only OpenAI has a key here.
    decision = run(
        perf("claude-sonnet-4-5"), perf("gpt-5", failures=30), configured=frozenset({"openai"})
    )
    assert decision.chosen == "gpt-5"
    assert Reason.NOT_CONFIGURED in reasons(decision, "claude-sonnet-4-5")
    sonnet = decision.candidate("claude-sonnet-4-5")
    assert sonnet is not None
    assert sonnet.rejected_because[0] == "not configured (anthropic has no key or base URL)"


def test_any_provider_ranks_regardless_of_configuration() -> None:
    decision = run(perf("claude-sonnet-4-5"), perf("gpt-5", failures=30), configured=None)
    assert decision.chosen == "claude-sonnet-4-5"
    assert decision.constraints["any_provider"] is True


def test_nothing_configured_chooses_nobody_and_says_why() -> None:
    decision = run(perf("gpt-5"), configured=frozenset())
    assert decision.chosen is None
    assert "none of their providers is configured" in decision.reason


def test_min_success_is_a_preference_the_fallback_explains() -> None:
    decision = run(perf("gpt-5", failures=100), perf("claude-sonnet-4-5", failures=120))
    assert decision.fallback is True and decision.chosen is not None
    assert Reason.SUCCESS_BELOW_MINIMUM in reasons(decision, "gpt-5")
    assert "success bound" in decision.reason and "below the 70% minimum" in decision.reason


def test_too_few_counted_calls_is_judged_on_the_calls_that_count() -> None:
    # 40 calls, but 35 were rate limits: five calls say something about the model.
    limited = perf("gpt-5", calls=40, rate_limited=35, counted_calls=5)
    decision = run(limited)
    found = decision.candidate("gpt-5")
    assert found is not None
    assert Rejection(Reason.TOO_FEW_CALLS, 5, 10) in found.rejections
    assert found.success_rate == 1.0
    assert found.not_counted_text == "35 rate limits not counted"


def test_tier_restricts_the_choice_to_that_tier() -> None:
    decision = run(perf("gpt-5"), perf("claude-opus-4-5", failures=40), tier="premium")
    assert decision.chosen in {m.id for m in REGISTRY.by_tier("premium")}
    assert decision.candidate("gpt-5") is None


def test_exploration_never_draws_a_model_over_a_cap_or_unconfigured() -> None:
    # gpt-5-mini is uncertain (few calls) but over the cost cap; claude-haiku-4-5 is
    # uncertain but unconfigured: neither may ever be explored.
    figures = [
        perf("gpt-5-nano", calls=300, failures=60, cost=0.0001),
        perf("gpt-5-mini", calls=3, cost=0.5),
        perf("claude-haiku-4-5", calls=3, cost=0.0001),
    ]
    drawn = set()
    for seed in range(300):
        decision = run(
            *figures,
            stage="triage",
            configured=frozenset({"openai"}),
            explore=True,
            seed=seed,
            explore_share=1.0,
            max_cost_usd=0.01,
        )
        drawn.add(decision.chosen)
    assert "gpt-5-mini" not in drawn and "claude-haiku-4-5" not in drawn
    assert drawn <= {"gpt-5-nano", None} | {m.id for m in REGISTRY.by_tier("cheap")}


@pytest.mark.parametrize(
    ("cost", "p95", "expected"),
    [
        (0.02, 900.0, [Reason.OVER_COST_CAP]),
        (None, 900.0, [Reason.COST_UNKNOWN]),
        (0.001, 3000.0, [Reason.OVER_LATENCY_CAP]),
        (0.001, None, []),
        (0.01, 2000.0, []),
    ],
)
def test_cap_checks_live_in_one_place(
    cost: float | None, p95: float | None, expected: list[Reason]
) -> None:
    settings = RoutingSettings(max_cost_usd=0.01, max_latency_ms=2000.0)
    assert [r.reason for r in cap_rejections(cost, p95, settings)] == expected


def test_a_model_whose_newest_calls_are_outages_is_down_and_not_explored() -> None:
    down = perf("gpt-5", calls=300, failures=0, recent_calls=20, recent_outage_run=3)
    decision = run(down, perf("claude-sonnet-4-5", failures=20))
    assert decision.chosen == "claude-sonnet-4-5"
    found = decision.candidate("gpt-5")
    assert found is not None and Rejection(Reason.DOWN, 3, 3) in found.rejections
    assert found.rejected_because[0].startswith("down: its newest 3 calls were outage failures")
    for seed in range(100):
        explored = run(
            down,
            perf("claude-sonnet-4-5", failures=20),
            explore=True,
            seed=seed,
            explore_share=1.0,
        )
        assert explored.chosen != "gpt-5"
    # Two outages in a row are not yet "down"; the setting moves the line.
    assert run(perf("gpt-5", recent_outage_run=2)).chosen == "gpt-5"
    assert run(perf("gpt-5", recent_outage_run=2), down_after_outages=2).chosen != "gpt-5"


def test_the_fallback_never_prefers_a_down_model_to_one_that_answers_poorly() -> None:
    # Nobody qualifies: claude-sonnet-4-5 (first in the registry) has the better record but is
    # down; gpt-5 answers, below the minimum. A model that answers nothing is used last.
    down = perf("claude-sonnet-4-5", calls=300, recent_calls=20, recent_outage_run=3)
    poor = perf("gpt-5", calls=200, failures=100)
    decision = run(down, poor)
    assert decision.fallback is True
    assert decision.chosen == "gpt-5"
    assert "using gpt-5, the best record within the caps" in decision.reason
    assert "claude-sonnet-4-5: down" in decision.reason


def test_the_fallback_takes_the_best_of_the_poor_records_not_the_registry_order() -> None:
    # Both below the minimum; the registry lists claude-sonnet-4-5 first, gpt-5 fails less.
    decision = run(
        perf("claude-sonnet-4-5", calls=200, failures=120), perf("gpt-5", calls=200, failures=80)
    )
    assert decision.fallback is True and decision.chosen == "gpt-5"
    # With the records swapped the choice follows the record.
    swapped = run(
        perf("claude-sonnet-4-5", calls=200, failures=80), perf("gpt-5", calls=200, failures=120)
    )
    assert swapped.chosen == "claude-sonnet-4-5"


def test_when_every_model_within_the_caps_is_down_the_best_record_is_tried_and_said() -> None:
    decision = run(
        perf("claude-sonnet-4-5", calls=200, failures=60, recent_calls=20, recent_outage_run=4),
        perf("gpt-5", calls=200, failures=10, recent_calls=20, recent_outage_run=3),
        tier="capable",
    )
    assert decision.chosen == "gpt-5"
    assert "using gpt-5, down like every other model within the caps" in decision.reason


def test_exploring_tries_the_model_that_could_be_best_not_the_closest() -> None:
    # claude-sonnet-4-5's record is close to gpt-5's but well known: it cannot be much better.
    # claude-haiku-4-5 has 6 calls, all good: its rate could well be above gpt-5's.
    figures = [
        perf("gpt-5", calls=400, failures=10),
        perf("claude-sonnet-4-5", calls=400, failures=12),
        perf("claude-haiku-4-5", calls=6),
    ]
    for seed in range(50):
        decision = run(*figures, explore=True, seed=seed, explore_share=1.0)
        assert decision.chosen == "claude-haiku-4-5" and decision.explored
        assert decision.best == "gpt-5"
        assert decision.reason.startswith("Exploring: claude-haiku-4-5 could be the best")


def test_exploring_stays_with_the_leader_when_no_challenger_could_beat_it() -> None:
    # Both challengers are well known and worse: the explore share is not spent on them.
    figures = [
        perf("gpt-5", calls=1000, failures=10),
        perf("claude-sonnet-4-5", calls=1000, failures=50),
        perf("claude-haiku-4-5", calls=500, failures=100),
    ]
    for seed in range(50):
        decision = run(*figures, explore=True, seed=seed, explore_share=1.0)
        assert decision.chosen == "gpt-5" and not decision.explored


def test_exploring_tries_a_model_without_history_first() -> None:
    # Never called, claude-sonnet-4-5 could be anything: it is worth a try over a good record
    # at a similar price (0.0105 by the registry).
    good = perf("gpt-5", calls=400, failures=4, cost=0.01)
    decision = run(good, explore=True, explore_share=1.0)
    assert decision.chosen == "claude-sonnet-4-5" and decision.explored
    assert decision.best == "gpt-5"
    # At a fifth of the price gpt-5 stays: even a perfect rate would not pay sonnet's price.
    cheap = perf("gpt-5", calls=400, failures=4, cost=0.002)
    assert run(cheap, explore=True, explore_share=1.0).chosen == "gpt-5"


def test_a_demoted_model_is_explored_on_its_newest_calls_not_its_window() -> None:
    # gpt-5's window is excellent but 12 of its newest 20 calls failed: demoted, and its
    # newest calls say it cannot beat claude-sonnet-4-5, so it is not tried.
    demoted = perf("gpt-5", calls=400, failures=12, recent_calls=20, recent_failures=12)
    sonnet = perf("claude-sonnet-4-5", calls=400, failures=20)
    for seed in range(50):
        decision = run(demoted, sonnet, explore=True, seed=seed, explore_share=1.0)
        assert decision.best == "claude-sonnet-4-5"
        assert decision.chosen == "claude-sonnet-4-5" and not decision.explored


# Exploring with a short memory, and trials of a challenger. Exploring judges a model by its
# calls in exploring's memory (``explore_calls``, weighted by ``explore_half_life_hours``);
# ranking by its window. A try is started for a share of decisions; the challenger that took
# the newest call keeps the calls while its newest calls keep it promising (a sequential test),
# and ranking alone decides who leads.

TRIAL_NOW = 1_767_225_600.0


def leader(**fields: object) -> ModelPerformance:
    # A long-proven leader: 1,000 calls at 90 %, the newest an hour ago.
    figures: dict[str, object] = {
        "weighted_calls": 300.0,
        "weighted_successes": 270.0,
        "explore_calls": 70.0,
        "explore_successes": 63.0,
        "newest_ts": TRIAL_NOW - 3600,
    }
    return perf("gpt-5", calls=1000, failures=100, **{**figures, **fields})


def test_a_model_poor_long_ago_is_tried_again_once_its_record_has_aged() -> None:
    # claude-sonnet-4-5 failed a quarter of its calls, but a week ago: in exploring's memory
    # almost nothing is left of them, so it could be anything now. claude-haiku-4-5 is close
    # to the leader and was tried yesterday: the model known least about now is tried.
    stale = perf(
        "claude-sonnet-4-5",
        calls=56,
        failures=14,
        weighted_calls=8.0,
        weighted_successes=6.0,
        explore_calls=0.2,
        explore_successes=0.15,
        newest_ts=TRIAL_NOW - 7 * 86400,
    )
    close = perf(
        "claude-haiku-4-5",
        calls=200,
        failures=30,
        weighted_calls=40.0,
        weighted_successes=34.0,
        explore_calls=12.0,
        explore_successes=11.0,
        newest_ts=TRIAL_NOW - 30 * 3600,
    )
    for seed in range(30):
        decision = run(leader(), stale, close, explore=True, seed=seed, explore_share=1.0)
        assert decision.chosen == "claude-sonnet-4-5" and decision.explored
        assert not decision.trial and decision.best == "gpt-5"
        assert "old evidence is uncertain evidence" in decision.reason
        assert decision.reason.startswith("Exploring: claude-sonnet-4-5 could be the best")


def test_a_model_shown_poor_in_exploring_memory_is_not_tried() -> None:
    # The same old record, but it was tried again today and failed a third of the calls.
    recent_poor = perf(
        "claude-sonnet-4-5",
        calls=70,
        failures=19,
        weighted_calls=20.0,
        weighted_successes=14.0,
        explore_calls=12.0,
        explore_successes=8.0,
        newest_ts=TRIAL_NOW - 20 * 3600,
    )
    for seed in range(30):
        decision = run(leader(), recent_poor, explore=True, seed=seed, explore_share=1.0)
        assert decision.chosen == "gpt-5" and not decision.explored


def trialled(successes: float, calls: float, **fields: object) -> ModelPerformance:
    """claude-sonnet-4-5 after a try: it took the stage's newest calls."""
    return perf(
        "claude-sonnet-4-5",
        calls=56 + int(calls),
        failures=14 + int(calls - successes),
        weighted_calls=8.0 + calls,
        weighted_successes=6.0 + successes,
        explore_calls=calls,
        explore_successes=successes,
        newest_ts=TRIAL_NOW - 60,
        **fields,
    )


def test_a_challenger_that_keeps_succeeding_keeps_the_calls_beyond_the_share() -> None:
    # No decision starts a try (share 0), but the one under way goes on: 12 of 12.
    decision = run(leader(), trialled(12.0, 12.0), explore=True, explore_share=0.0)
    assert decision.chosen == "claude-sonnet-4-5"
    assert decision.explored and decision.trial and decision.best == "gpt-5"
    assert decision.reason.startswith(
        "Trying: claude-sonnet-4-5 made the last call for stage 'analysis' of workflow 'ci' (a "
        "try, or a call that named it) and keeps the calls while its newest calls keep it "
        "promising (12.0 of 12.0 recency-weighted calls succeeded in "
        "the last 24 hours, against gpt-5's 90%); it leads once its success bound passes gpt-5's"
    )
    assert decision.as_dict()["trial"] is True
    # One early failure is forgiven; two are not.
    assert run(leader(), trialled(11.0, 12.0), explore=True, explore_share=0.0).trial
    dropped = run(leader(), trialled(10.0, 12.0), explore=True, explore_share=0.0)
    assert dropped.chosen == "gpt-5" and not dropped.explored and not dropped.trial


def test_a_challenger_no_better_than_the_leader_is_dropped() -> None:
    # 27 of 30 is the leader's own rate: no evidence of being better, so the trial ends.
    decision = run(leader(), trialled(27.0, 30.0), explore=True, explore_share=0.0)
    assert decision.chosen == "gpt-5" and not decision.explored


def test_no_trial_without_explore_or_when_the_leader_took_the_newest_call() -> None:
    assert run(leader(), trialled(12.0, 12.0)).chosen == "gpt-5"
    newest_leader = leader(newest_ts=TRIAL_NOW)
    decision = run(newest_leader, trialled(12.0, 12.0), explore=True, explore_share=0.0)
    assert decision.chosen == "gpt-5" and not decision.trial


def test_a_challenger_over_a_cap_or_down_is_never_on_trial() -> None:
    dear = trialled(12.0, 12.0, cost=0.05)
    capped = run(leader(), dear, explore=True, explore_share=0.0, max_cost_usd=0.01)
    assert capped.chosen == "gpt-5" and not capped.trial
    down = trialled(12.0, 12.0, recent_calls=3, recent_outage_run=3)
    assert run(leader(), down, explore=True, explore_share=0.0).chosen == "gpt-5"


def test_ten_lucky_calls_on_trial_do_not_displace_a_thousand_good_ones() -> None:
    # The trial sends the challenger calls; ranking alone decides who leads, and 10 of 10
    # (a bound of 72 %) do not beat 1,000 calls at 95 % (a bound of 94 %).
    proven = perf("gpt-5", calls=1000, failures=50, newest_ts=TRIAL_NOW - 3600)
    lucky = perf("claude-sonnet-4-5", calls=10, newest_ts=TRIAL_NOW - 60)
    decision = run(proven, lucky, explore=True, explore_share=0.0)
    assert decision.best == "gpt-5"
    assert decision.chosen == "claude-sonnet-4-5" and decision.trial
    assert run(proven, lucky).chosen == "gpt-5"
    # Once its own record is strong enough, it leads: no longer a trial, simply the best.
    proven_record = perf("claude-sonnet-4-5", calls=1000, failures=10, newest_ts=TRIAL_NOW - 60)
    after = run(proven, proven_record, explore=True, explore_share=0.0)
    assert after.best == after.chosen == "claude-sonnet-4-5" and not after.explored
