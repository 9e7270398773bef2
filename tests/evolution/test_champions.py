"""The champion rules and the lifecycle, on hand-made candidates (no Ray, no database)."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from evolution.champions import (
    Candidate,
    ChampionPolicy,
    LiveRecord,
    decide,
    live_record,
    next_stage,
)
from market.timeframes import bars_per_year

HOURLY = bars_per_year("1h")  # 8760
POLICY = ChampionPolicy()
# Five configs tried; the first is the challenger's. Sample variance (ddof=1) of the annualized
# Sharpes: mean 1, squared deviations 4 + 0 + 4 + 1 + 1 = 10, over 4: 2.5.
FIVE = [3.0, 1.0, -1.0, 0.0, 2.0]
# A quiet search: Sharpes close together, so chance alone explains little.
QUIET = [3.0, 0.1, 0.0, -0.1]


def champion(sharpe: float = 1.0, bars: int = 5000) -> Candidate:
    return Candidate("r-old/ta-g001-002", sharpe, bars)


def test_dsr_by_hand() -> None:
    # Per-period Sharpe = annualized / sqrt(8760); the trials' per-period variance is 2.5 / 8760.
    # E[max Z] over N = 5 = (1 - g) Phi^-1(1 - 1/5) + g Phi^-1(1 - 1/(5e)), g Euler's constant,
    # = 0.4228 * 0.8416 + 0.5772 * 1.4498 = 1.1927; SR* = sqrt(2.5 / 8760) * 1.1927 = 0.02015.
    # SR = 3 / 93.59 = 0.03205, normal returns: z = (SR - SR*) sqrt(999) / sqrt(1 + SR^2 / 2)
    # = 0.3762, DSR = Phi(z) = 0.6466.
    normal = NormalDist()
    gamma = 0.5772156649015329
    expected_max = (1 - gamma) * normal.inv_cdf(0.8) + gamma * normal.inv_cdf(1 - 1 / (5 * math.e))
    benchmark = math.sqrt(2.5 / HOURLY) * expected_max
    sharpe = 3.0 / math.sqrt(HOURLY)
    z = (sharpe - benchmark) * math.sqrt(999) / math.sqrt(1 + 0.5 * sharpe**2)
    by_hand = normal.cdf(z)
    assert by_hand == pytest.approx(0.6466, abs=1e-4)

    decision = decide(Candidate("r1/ta-1", 3.0, 1000), None, FIVE, POLICY, HOURLY)
    assert decision.dsr == pytest.approx(by_hand, rel=1e-9)
    assert decision.n_trials == 5
    assert not decision.promote
    assert decision.stage == "DISCOVERY"
    assert decision.reason == "refused: DSR 0.65 < 0.95 over 5 trials"


def test_dsr_uses_the_challengers_moments() -> None:
    # Fat tails and negative skew widen the Sharpe's error: z's denominator becomes
    # sqrt(1 - g3 SR + (g4 - 1)/4 SR^2) with g3 = -0.5, g4 = 6.
    normal = NormalDist()
    gamma = 0.5772156649015329
    expected_max = (1 - gamma) * normal.inv_cdf(0.8) + gamma * normal.inv_cdf(1 - 1 / (5 * math.e))
    benchmark = math.sqrt(2.5 / HOURLY) * expected_max
    sharpe = 3.0 / math.sqrt(HOURLY)
    z = (sharpe - benchmark) * math.sqrt(999) / math.sqrt(1 + 0.5 * sharpe + 1.25 * sharpe**2)
    challenger = Candidate.from_metrics(
        "r1/ta-1", {"sharpe": 3.0, "bars": 1000.0, "skew": -0.5, "kurtosis": 6.0}
    )
    decision = decide(challenger, None, FIVE, POLICY, HOURLY)
    assert decision.dsr == pytest.approx(normal.cdf(z), rel=1e-9)


def test_a_better_challenger_with_a_poor_dsr_is_refused() -> None:
    # It beats the champion (1.0) by 2.0, far above the margin, but 5 scattered trials and 1000
    # bars leave a DSR of 0.65.
    decision = decide(Candidate("r1/ta-1", 3.0, 1000), champion(), FIVE, POLICY, HOURLY)
    assert not decision.promote
    assert decision.stage == "DISCOVERY"
    assert decision.reason == "refused: DSR 0.65 < 0.95 over 5 trials"


def test_a_better_challenger_with_a_good_dsr_is_promoted() -> None:
    decision = decide(Candidate("r1/ta-1", 3.0, 20_000), champion(), QUIET, POLICY, HOURLY)
    assert decision.promote
    assert decision.stage == "PAPER"
    assert decision.dsr is not None and decision.dsr >= 0.95
    assert decision.n_trials == 4
    assert decision.reason.startswith("promoted: Sharpe 3.00 over 20000 bars, DSR ")
    assert decision.reason.endswith(
        ">= 0.95 over 4 trials, beats the champion's 1.00 by 2.00 >= 0.25"
    )


def test_a_challenger_within_the_margin_is_refused_but_validated() -> None:
    decision = decide(Candidate("r1/ta-1", 3.0, 20_000), champion(2.9), QUIET, POLICY, HOURLY)
    assert not decision.promote
    assert decision.stage == "VALIDATION"  # its DSR and bars pass: only the margin fails
    assert decision.dsr is not None and decision.dsr >= 0.95
    assert decision.reason == (
        "refused: Sharpe 3.00 does not beat the champion's 2.90 by the margin 0.25 (needs 3.15)"
    )


def test_a_worse_challenger_is_refused_with_every_failing_rule() -> None:
    decision = decide(Candidate("r1/ta-1", 0.5, 150), champion(1.0), [0.5, 3.0], POLICY, HOURLY)
    assert not decision.promote
    assert decision.stage == "DISCOVERY"
    assert decision.reason.startswith("refused: 150 out-of-sample bars < 200 required; DSR 0.")
    assert decision.reason.endswith(
        "< 0.95 over 2 trials; Sharpe 0.50 does not beat the champion's 1.00 by the margin 0.25 "
        "(needs 1.25)"
    )


def test_too_few_bars_is_a_refusal_even_with_a_great_sharpe() -> None:
    decision = decide(Candidate("r1/ta-1", 50.0, 150), None, [50.0], POLICY, HOURLY)
    assert not decision.promote
    assert decision.reason == "refused: 150 out-of-sample bars < 200 required"
    assert decision.dsr is not None and decision.dsr > 0.95  # computed and shown, not enough
    one_bar = decide(Candidate("r1/ta-1", 50.0, 1), None, [50.0], POLICY, HOURLY)
    assert one_bar.dsr is None
    assert one_bar.reason == "refused: 1 out-of-sample bars < 200 required"


def test_no_incumbent_needs_only_dsr_and_bars() -> None:
    decision = decide(Candidate("r1/ta-1", 3.0, 20_000), None, QUIET, POLICY, HOURLY)
    assert decision.promote and decision.stage == "PAPER"
    assert decision.reason.endswith(", no champion yet")
    # A champion without a Sharpe cannot be measured against: the margin rule is skipped.
    no_sharpe = Candidate("r0/ta-0", None, 5000)
    decision = decide(Candidate("r1/ta-1", 3.0, 20_000), no_sharpe, QUIET, POLICY, HOURLY)
    assert decision.promote
    assert decision.reason.endswith(", the champion has no Sharpe")


def test_a_challenger_without_a_sharpe_is_refused() -> None:
    for sharpe in (None, math.nan, math.inf):
        decision = decide(Candidate("r1/ta-1", sharpe, 5000), None, QUIET, POLICY, HOURLY)
        assert not decision.promote
        assert decision.dsr is None
        assert decision.reason == "refused: no finite out-of-sample Sharpe in this regime"


def test_trials_count_the_challenger_once() -> None:
    counted = decide(Candidate("r1/ta-1", 3.0, 1000), None, FIVE, POLICY, HOURLY)
    assert counted.n_trials == 5  # 3.0 is already among the trials
    added = decide(Candidate("r1/ta-1", 3.0, 1000), None, FIVE[1:], POLICY, HOURLY)
    assert added.n_trials == 5 and added.dsr == pytest.approx(counted.dsr)
    dropped = decide(Candidate("r1/ta-1", 3.0, 1000), None, [*FIVE, math.nan], POLICY, HOURLY)
    assert dropped.n_trials == 5
    alone = decide(Candidate("r1/ta-1", 3.0, 20_000), None, [], POLICY, HOURLY)
    assert alone.n_trials == 1  # one trial: SR* = 0 and the DSR is the PSR against zero
    assert alone.reason.endswith("over 1 trial, no champion yet")


def test_a_lower_threshold_promotes_what_the_default_refuses() -> None:
    lenient = ChampionPolicy(margin=0.0, dsr_threshold=0.5, min_regime_bars=50)
    decision = decide(Candidate("r1/ta-1", 3.0, 1000), champion(2.9), FIVE, lenient, HOURLY)
    assert decision.promote
    assert "DSR 0.65 >= 0.50 over 5 trials" in decision.reason


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match=r"periods_per_year must be a positive number; got 0"):
        decide(Candidate("r1/ta-1", 1.0, 500), None, [], POLICY, 0)
    with pytest.raises(ValueError, match=r"challenger 'r1/ta-1' is the incumbent champion"):
        decide(Candidate("r1/ta-1", 1.0, 500), Candidate("r1/ta-1", 1.0, 500), [], POLICY, HOURLY)
    with pytest.raises(ValueError, match=r"ChampionPolicy.margin must be a finite number >= 0"):
        ChampionPolicy(margin=-0.1)
    with pytest.raises(ValueError, match=r"ChampionPolicy.dsr_threshold must be between 0 and 1"):
        ChampionPolicy(dsr_threshold=1.5)
    with pytest.raises(ValueError, match=r"ChampionPolicy.min_regime_bars must be an integer >= 2"):
        ChampionPolicy(min_regime_bars=1)
    with pytest.raises(ValueError, match=r"ChampionPolicy.min_live_trades must be an integer >= 1"):
        ChampionPolicy(min_live_trades=0)
    with pytest.raises(ValueError, match=r"Candidate.bars of 'r1/ta-1' must be a non-negative"):
        Candidate("r1/ta-1", 1.0, -1)
    with pytest.raises(ValueError, match=r"must be the non-excess kurtosis, at least 1 \+ skew"):
        Candidate("r1/ta-1", 1.0, 500, skew=0.0, kurtosis=0.2)  # an excess kurtosis


def test_candidate_from_metrics_falls_back_to_normal_returns() -> None:
    plain = Candidate.from_metrics("r1/ta-1", {"sharpe": 1.5, "bars": 300.0, "hit_rate": 0.6})
    assert (plain.sharpe, plain.bars, plain.skew, plain.kurtosis) == (1.5, 300, 0.0, 3.0)
    assert plain.metrics["hit_rate"] == 0.6
    excess = Candidate.from_metrics(
        "r1/ta-1", {"sharpe": 1.5, "bars": 300.0, "skew": 0.0, "kurtosis": 0.1}
    )
    assert (excess.skew, excess.kurtosis) == (0.0, 3.0)
    nan = Candidate.from_metrics("r1/ta-1", {"sharpe": math.nan, "bars": math.nan})
    assert (nan.sharpe, nan.bars) == (None, 0)


# -- lifecycle -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "event", "after"),
    [
        ("DISCOVERY", "validated", "VALIDATION"),
        ("VALIDATION", "validated", "VALIDATION"),
        ("VALIDATION", "promoted", "PAPER"),
        ("DISCOVERY", "promoted", "PAPER"),
        ("PAPER", live_record(20, 0.55), "MATURE"),
        ("PAPER", live_record(19, 0.9), "PAPER"),  # too few trades: no evidence yet
        ("PAPER", live_record(25, 0.4), "DECAY"),
        ("MATURE", live_record(100, 0.6), "MATURE"),
        ("MATURE", live_record(40, 0.45), "DECAY"),
        ("DECAY", live_record(40, 0.45), "RETIRED"),
        ("DECAY", live_record(40, 0.7), "DECAY"),  # never promoted back
        ("DECAY", live_record(3, 0.0), "DECAY"),
        ("PAPER", "dethroned", "RETIRED"),
        ("MATURE", "dethroned", "RETIRED"),
        ("DECAY", "dethroned", "RETIRED"),
    ],
)
def test_lifecycle_transitions(stage: str, event: str | LiveRecord, after: str) -> None:
    assert next_stage(stage, event) == after  # type: ignore[arg-type]


def test_min_live_trades_comes_from_the_policy() -> None:
    policy = ChampionPolicy(min_live_trades=5)
    assert next_stage("PAPER", live_record(5, 0.6), policy=policy) == "MATURE"
    assert next_stage("PAPER", live_record(5, 0.6)) == "PAPER"


def test_a_full_life() -> None:
    stage = "DISCOVERY"
    for event in ("validated", "promoted", live_record(30, 0.6), live_record(80, 0.42)):
        stage = next_stage(stage, event)  # type: ignore[arg-type]
    assert stage == "DECAY"
    assert next_stage(stage, "dethroned") == "RETIRED"


def test_bad_stages_and_events_raise() -> None:
    with pytest.raises(ValueError, match=r"stage must be one of DISCOVERY, .*; got 'LIVE'"):
        next_stage("LIVE", "validated")
    with pytest.raises(ValueError, match=r"event must be one of validated, promoted, dethroned"):
        next_stage("PAPER", "crowned")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"event 'dethroned' cannot move a model in stage "):
        next_stage("VALIDATION", "dethroned")
    with pytest.raises(ValueError, match=r"event 'promoted' cannot move a model in stage 'PAPER'"):
        next_stage("PAPER", "promoted")
    with pytest.raises(ValueError, match=r"event 'validated' cannot move .* stage 'RETIRED'"):
        next_stage("RETIRED", "validated")
    with pytest.raises(ValueError, match=r"a live record needs a champion that trades"):
        next_stage("DISCOVERY", live_record(50, 0.6))
    with pytest.raises(ValueError, match=r"got stage 'RETIRED'"):
        next_stage("RETIRED", live_record(50, 0.6))
    with pytest.raises(ValueError, match=r"live_record trades must be a non-negative integer"):
        live_record(-1, 0.5)
    with pytest.raises(ValueError, match=r"live_record hit_rate must be between 0 and 1; got 1.2"):
        live_record(10, 1.2)
