"""PSR, DSR and PBO: published worked examples, a hand-computed CSCV, properties, real BTC."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from market.overfitting import (
    SharpeStats,
    annualize_sharpe,
    deflated_sharpe_ratio,
    deflated_sharpe_ratio_of,
    expected_max_sharpe,
    minimum_backtest_length,
    minimum_track_record_length,
    per_period_sharpe,
    probabilistic_sharpe_ratio,
    probabilistic_sharpe_ratio_of,
    probability_of_backtest_overfitting,
    sharpe_ratio,
    sharpe_standard_error,
)
from market.timeframes import bars_per_year

EULER_GAMMA = 0.5772156649015329


def test_deflated_sharpe_ratio_paper_example() -> None:
    """The numerical example of Bailey and López de Prado (2014), "The Deflated Sharpe Ratio:
    Correcting for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio
    Management 40(5), pp. 94-107, section "A numerical example".

    A strategist runs N = 100 independent trials; the best has an annualized Sharpe of 2.5 over
    five years of daily returns (T = 1250); the trials' annualized Sharpes have variance 1/2; the
    selected returns have skewness -3 and kurtosis 10. The paper works per day with 250 days a
    year: E[max SR] ~= 0.1132 and DSR ~= 0.9004 (both published to four decimals; 252 days a year
    would give 0.8997, so the published figure also pins the 250).
    """
    days = 250
    sharpe = per_period_sharpe(2.5, days)
    variance = 0.5 / days
    benchmark = expected_max_sharpe(100, variance)
    assert benchmark == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(
        sharpe, 1250, n_trials=100, sharpe_variance=variance, skew=-3.0, kurtosis=10.0
    )
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    # The DSR is the PSR against that benchmark.
    assert dsr == probabilistic_sharpe_ratio(
        sharpe, 1250, benchmark=benchmark, skew=-3.0, kurtosis=10.0
    )


def test_minimum_backtest_length_paper_example() -> None:
    """Bailey, Borwein, López de Prado and Zhu (2014), "Pseudo-Mathematics and Financial
    Charlatanism: The Effects of Backtest Overfitting on Out-of-Sample Performance", Notices of the
    AMS 61(5), pp. 458-471: with only 5 years of data, no more than 45 independent model
    configurations should be tried, or an annualized in-sample Sharpe of 1 is expected from
    skill-less strategies (MinBTL, from the same expected-maximum formula as the DSR).
    """
    assert minimum_backtest_length(45) < 5.0 < minimum_backtest_length(46)
    # Equivalently: annualized Sharpes over 5 years have variance ~1/5; the best of 45 is ~1.
    assert expected_max_sharpe(45, 1 / 5) == pytest.approx(1.0, abs=1e-3)
    assert expected_max_sharpe(46, 1 / 5) > 1.0 > expected_max_sharpe(45, 1 / 5)
    assert minimum_backtest_length(45, max_sharpe=2.0) == pytest.approx(
        minimum_backtest_length(45) / 4
    )


@pytest.mark.parametrize("n_trials", [10, 100, 1000])
def test_expected_max_approximates_the_exact_expected_maximum(n_trials: int) -> None:
    """E[max of N standard normals] = integral of x N phi(x) Phi(x)^(N-1): the paper's closed form
    is within 2.5% of it (and gets closer as N grows)."""
    exact, _ = integrate.quad(
        lambda x: x * n_trials * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n_trials - 1), -12, 12
    )
    approx = expected_max_sharpe(n_trials, 1.0)
    assert approx == pytest.approx(exact, rel=0.025)
    assert expected_max_sharpe(n_trials, 4.0, mean_sharpe=0.5) == pytest.approx(0.5 + 2 * approx)
    assert expected_max_sharpe(1, 4.0, mean_sharpe=0.5) == 0.5


def test_psr_identities() -> None:
    # At the benchmark the PSR is a coin flip, whatever the moments.
    assert probabilistic_sharpe_ratio(0.1, 500, benchmark=0.1, skew=-1.0, kurtosis=8.0) == 0.5
    # Normal returns: Lo's (2002) / Mertens' standard error sqrt((1 + SR^2 / 2) / (n - 1)).
    sr, n = 0.08, 400
    expected = stats.norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 + sr**2 / 2))
    assert probabilistic_sharpe_ratio(sr, n) == pytest.approx(expected, rel=1e-14)
    assert sharpe_standard_error(sr, n) == pytest.approx(math.sqrt((1 + sr**2 / 2) / (n - 1)))
    # Negative skew and fat tails widen the error, so the same Sharpe is less convincing.
    assert probabilistic_sharpe_ratio(sr, n, skew=-2.0, kurtosis=12.0) < probabilistic_sharpe_ratio(
        sr, n
    )
    # The minimum track record length is where the PSR crosses the confidence.
    mintrl = minimum_track_record_length(sr, skew=-1.0, kurtosis=6.0, confidence=0.95)
    below = probabilistic_sharpe_ratio(sr, math.floor(mintrl), skew=-1.0, kurtosis=6.0)
    above = probabilistic_sharpe_ratio(sr, math.ceil(mintrl), skew=-1.0, kurtosis=6.0)
    assert below < 0.95 <= above
    assert annualize_sharpe(per_period_sharpe(1.3, 8760), 8760) == pytest.approx(1.3)


def _btc_returns(btc_1h: pd.DataFrame) -> npt.NDArray[np.float64]:
    close = btc_1h["close"].to_numpy(dtype=np.float64)
    return close[1:] / close[:-1] - 1.0


def test_psr_of_real_btc_buy_and_hold(btc_1h: pd.DataFrame) -> None:
    """Hourly buy-and-hold BTC/USDT, 2020-01 to 2024-03 (37,215 returns), against the closed form
    computed here with scipy's moments."""
    returns = _btc_returns(btc_1h)
    n = returns.size
    sr = returns.mean() / returns.std(ddof=1)
    g3 = stats.skew(returns)
    g4 = stats.kurtosis(returns, fisher=False)
    for benchmark in (0.0, per_period_sharpe(0.5, bars_per_year("1h"))):
        z = (sr - benchmark) * math.sqrt(n - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
        assert probabilistic_sharpe_ratio_of(returns, benchmark=benchmark) == pytest.approx(
            stats.norm.cdf(z), rel=1e-12
        )
    got = SharpeStats.from_returns(returns)
    assert got.n_obs == n == 37215
    assert annualize_sharpe(got.sharpe, bars_per_year("1h")) == pytest.approx(1.1362, abs=1e-4)
    assert got.skew == pytest.approx(-0.4568, abs=1e-4)
    assert got.kurtosis == pytest.approx(51.27, abs=1e-2)  # very fat hourly tails
    assert probabilistic_sharpe_ratio_of(returns) == pytest.approx(0.99018, abs=1e-5)
    # The fat tails cost a lot: normal returns with the same Sharpe would be near-certain.
    assert probabilistic_sharpe_ratio(got.sharpe, n) > 0.99
    assert probabilistic_sharpe_ratio_of(returns, benchmark=per_period_sharpe(1.0, 8760)) == (
        pytest.approx(0.6102, abs=1e-4)
    )


def _momentum_grid(btc_1h: pd.DataFrame, lookbacks: range) -> npt.NDArray[np.float64]:
    """Per-bar returns of 'long if the close is above the close `lookback` bars ago, else short',
    the position decided at the close of bar t and held to the close of t+1 (no fees)."""
    close = btc_1h["close"].to_numpy(dtype=np.float64)
    returns = close[1:] / close[:-1] - 1.0
    warmup = max(lookbacks)
    columns = []
    for lookback in lookbacks:
        position = np.zeros(close.size)
        position[lookback:] = np.sign(close[lookback:] - close[:-lookback])
        columns.append(position[:-1] * returns)
    return np.column_stack(columns)[warmup:]


def test_dsr_of_the_best_momentum_rule_on_real_btc(btc_1h: pd.DataFrame) -> None:
    grid = _momentum_grid(btc_1h, range(1, 101))
    trial_sharpes = grid.mean(axis=0) / grid.std(axis=0, ddof=1)
    best = int(np.argmax(trial_sharpes))
    selected = grid[:, best]
    n = selected.size
    sr, g3, g4 = trial_sharpes[best], stats.skew(selected), stats.kurtosis(selected, fisher=False)
    v = trial_sharpes.var(ddof=1)
    e_max = math.sqrt(v) * (
        (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / 100)
        + EULER_GAMMA * stats.norm.ppf(1 - 1 / (100 * math.e))
    )
    z = (sr - e_max) * math.sqrt(n - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    dsr = deflated_sharpe_ratio_of(selected, trial_sharpes)
    assert dsr == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    assert best + 1 == 71  # the 71-hour lookback wins in sample
    assert annualize_sharpe(sr, 8760) == pytest.approx(1.4576, abs=1e-4)
    # Alone it looks certain; as the best of 100 tries it is far less so.
    assert probabilistic_sharpe_ratio_of(selected) > 0.998
    assert dsr == pytest.approx(0.7768, abs=1e-4)


def _pbo_by_loops(matrix: npt.NDArray[np.float64], n_splits: int) -> tuple[float, list[float]]:
    """CSCV written out plainly from the paper, as the reference for the vectorised version."""
    rows = matrix.shape[0] // n_splits * n_splits
    blocks = np.array_split(matrix[matrix.shape[0] - rows :], n_splits)
    logits = []
    for chosen in itertools.combinations(range(n_splits), n_splits // 2):
        in_rows = np.vstack([blocks[b] for b in chosen])
        out_rows = np.vstack([blocks[b] for b in range(n_splits) if b not in chosen])
        in_perf = in_rows.mean(axis=0) / in_rows.std(axis=0, ddof=1)
        out_perf = out_rows.mean(axis=0) / out_rows.std(axis=0, ddof=1)
        star = int(np.argmax(in_perf))
        rank = stats.rankdata(out_perf)[star]
        omega = rank / (matrix.shape[1] + 1)
        logits.append(math.log(omega / (1 - omega)))
    return float(np.mean(np.array(logits) <= 0)), logits


def test_pbo_on_real_momentum_grid_matches_plain_cscv(btc_1h: pd.DataFrame) -> None:
    grid = _momentum_grid(btc_1h, range(1, 25))
    result = probability_of_backtest_overfitting(grid, 10)
    pbo, logits = _pbo_by_loops(grid, 10)
    assert result.n_combinations == math.comb(10, 5) == len(logits)
    np.testing.assert_allclose(result.logits, logits, rtol=1e-9, atol=1e-12)
    assert result.pbo == pbo
    assert result.rows_used == grid.shape[0] // 10 * 10


def test_pbo_small_case_by_hand() -> None:
    """S = 4 blocks of one row, N = 3 strategies, metric = mean. The C(4, 2) = 6 in-sample choices:

    blocks: b0 = [3, 5, 0], b1 = [5, 6, 0], b2 = [4, 1, 3], b3 = [4, 0, 3]

    IS blocks | IS sums   | best | OOS sums  | OOS rank of best | w = rank/4 | logit
    (0, 1)    | [8, 11, 0]| s1   | [8, 1, 6] | 1                | 1/4        | ln(1/3)
    (0, 2)    | [7, 6, 3] | s0   | [9, 6, 3] | 3                | 3/4        | ln 3
    (0, 3)    | [7, 5, 3] | s0   | [9, 7, 3] | 3                | 3/4        | ln 3
    (1, 2)    | [9, 7, 3] | s0   | [7, 5, 3] | 3                | 3/4        | ln 3
    (1, 3)    | [9, 6, 3] | s0   | [7, 6, 3] | 3                | 3/4        | ln 3
    (2, 3)    | [8, 1, 6] | s0   | [8, 11, 0]| 2                | 1/2        | 0

    Two logits are <= 0 (the median rank counts as overfit): PBO = 2/6.
    """
    matrix = np.array([[3, 5, 0], [5, 6, 0], [4, 1, 3], [4, 0, 3]], dtype=float)
    result = probability_of_backtest_overfitting(matrix, 4, metric="mean")
    ln3 = math.log(3)
    np.testing.assert_allclose(result.logits, [-ln3, ln3, ln3, ln3, ln3, 0.0], atol=1e-15)
    assert result.pbo == pytest.approx(1 / 3)
    assert result.best.tolist() == [1, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(result.oos_rank, [0.25, 0.75, 0.75, 0.75, 0.75, 0.5])
    # The chosen strategy's means in and out of sample.
    np.testing.assert_allclose(result.is_performance, [5.5, 3.5, 3.5, 4.5, 4.5, 4.0])
    np.testing.assert_allclose(result.oos_performance, [0.5, 4.5, 4.5, 3.5, 3.5, 4.0])
    # Least squares by hand: mean IS 4.25, mean OOS 41/12; Sxy = -5.375, Sxx = 2.875.
    assert result.degradation_slope == pytest.approx(-5.375 / 2.875)
    assert result.degradation_intercept == pytest.approx(41 / 12 + 5.375 / 2.875 * 4.25)
    assert result.prob_oos_loss == 0.0
    # A callable metric gives the same answer through the general path.
    by_callable = probability_of_backtest_overfitting(matrix, 4, metric=lambda m: m.mean(axis=0))
    np.testing.assert_array_equal(by_callable.logits, result.logits)


def test_pbo_is_zero_when_one_strategy_dominates_every_period() -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, 0.01, size=(480, 10))
    dominant = noise.max(axis=1) + 0.001  # better than every other strategy in every period
    matrix = np.column_stack([noise[:, :4], dominant, noise[:, 4:]])
    result = probability_of_backtest_overfitting(matrix, 16)
    assert result.pbo == 0.0
    assert set(result.best.tolist()) == {4}
    np.testing.assert_allclose(result.logits, math.log(11))  # always ranked best of 11 OOS


def test_pbo_of_pure_noise_is_near_one_half() -> None:
    """With iid strategies the IS winner's OOS rank is uniform on 1..N; with N even, PBO -> 1/2.
    One matrix gives a noisy PBO (its combinations share blocks), so average 200 seeded draws."""
    rng = np.random.default_rng(2024)
    values = [
        probability_of_backtest_overfitting(rng.normal(0.0, 0.01, size=(400, 10)), 8).pbo
        for _ in range(200)
    ]
    assert np.mean(values) == pytest.approx(0.5, abs=0.05)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_strategies=st.integers(2, 12),
    n_splits=st.sampled_from([2, 4, 6, 8]),
    block=st.integers(2, 12),
    extra=st.integers(0, 7),
)
def test_pbo_properties(
    seed: int, n_strategies: int, n_splits: int, block: int, extra: int
) -> None:
    rng = np.random.default_rng(seed)
    extra %= n_splits  # fewer than one block: the block length stays `block`
    matrix = rng.normal(0.0005, 0.01, size=(n_splits * block + extra, n_strategies))
    result = probability_of_backtest_overfitting(matrix, n_splits)
    assert result.n_combinations == math.comb(n_splits, n_splits // 2)
    assert 0.0 <= result.pbo <= 1.0
    assert ((result.oos_rank > 0) & (result.oos_rank < 1)).all()
    assert result.rows_used == n_splits * block
    # Only whole blocks of the newest rows are used: the oldest `extra` rows do not matter.
    trimmed = probability_of_backtest_overfitting(matrix[extra:], n_splits)
    np.testing.assert_array_equal(trimmed.logits, result.logits)
    # Renaming strategies or rescaling all returns changes nothing (Sharpe is scale-free).
    order = rng.permutation(n_strategies)
    permuted = probability_of_backtest_overfitting(matrix[:, order] * 3.0, n_splits)
    np.testing.assert_allclose(permuted.logits, result.logits, rtol=1e-9)
    np.testing.assert_array_equal(order[permuted.best], result.best)


def test_flat_strategy_ranks_as_zero_sharpe() -> None:
    rng = np.random.default_rng(3)
    matrix = np.column_stack([np.zeros(64), rng.normal(0.001, 0.01, size=(64, 3))])
    result = probability_of_backtest_overfitting(matrix, 4)
    assert np.isfinite(result.logits).all()


@pytest.mark.parametrize(
    ("matrix", "n_splits", "match"),
    [
        (np.zeros((40, 3)), 5, r"n_splits must be an even number of at least 2; got 5"),
        (np.zeros((40, 3)), 0, r"n_splits must be an even number of at least 2; got 0"),
        (np.zeros((40, 1)), 4, r"performance must hold at least 2 strategies \(columns\); got 1"),
        (np.zeros(40), 4, r"performance must be a 2-D matrix .*got shape \(40,\)"),
        (
            np.zeros((3, 3)),
            4,
            r"performance has 3 rows; n_splits 4 needs at least one row per block",
        ),
        (
            np.where(np.arange(120).reshape(40, 3) == 7, np.nan, 1.0),
            4,
            r"performance must be finite; got nan at row 2, column 1",
        ),
        (
            np.zeros((2, 3)),
            2,
            r"metric 'sharpe' needs at least 2 rows in sample; 2 blocks of 1 row\(s\) give 1",
        ),
    ],
)
def test_pbo_bad_input(matrix: npt.NDArray[np.float64], n_splits: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        probability_of_backtest_overfitting(matrix, n_splits)


def test_pbo_rejects_unknown_metric() -> None:
    with pytest.raises(
        ValueError, match=r"metric must be 'sharpe', 'mean' or a callable; got 'sortino'"
    ):
        probability_of_backtest_overfitting(np.ones((8, 2)), 2, metric="sortino")  # type: ignore[arg-type]


def test_sharpe_bad_input() -> None:
    with pytest.raises(ValueError, match=r"returns must hold at least 2 observations; got 1"):
        sharpe_ratio([0.01])
    with pytest.raises(ValueError, match=r"returns must be finite; got nan at index 2"):
        sharpe_ratio([0.01, 0.02, float("nan"), 0.0])
    with pytest.raises(ValueError, match=r"returns have zero variance"):
        sharpe_ratio([0.01, 0.01, 0.01])
    with pytest.raises(ValueError, match=r"n_obs must be at least 2 observations; got 1"):
        probabilistic_sharpe_ratio(0.1, 1)
    with pytest.raises(ValueError, match=r"skew 3.0 and kurtosis 2.0 are inconsistent"):
        probabilistic_sharpe_ratio(0.5, 100, skew=3.0, kurtosis=2.0)
    with pytest.raises(ValueError, match=r"n_trials must be at least 1; got 0"):
        expected_max_sharpe(0, 0.1)
    with pytest.raises(
        ValueError, match=r"sharpe_variance must be finite and non-negative; got -0.1"
    ):
        expected_max_sharpe(10, -0.1)
    with pytest.raises(ValueError, match=r"trial_sharpes must hold at least 2 observations; got 1"):
        deflated_sharpe_ratio_of([0.01, -0.02, 0.03], [0.1])
    with pytest.raises(ValueError, match=r"sharpe 0.1 must exceed benchmark 0.2"):
        minimum_track_record_length(0.1, benchmark=0.2)
    with pytest.raises(ValueError, match=r"periods_per_year must be positive; got 0"):
        annualize_sharpe(0.1, 0)
