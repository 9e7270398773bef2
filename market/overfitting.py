"""How much of a backtest's Sharpe ratio survives chance, non-normal returns and the search itself.

Conventions (kept everywhere in this module):

- A Sharpe ratio is **per period** (per bar of the returns given): ``mean / std`` with the
  sample standard deviation (``ddof=1``) and no risk-free rate. :func:`annualize_sharpe` and
  :func:`per_period_sharpe` convert with ``sqrt(periods_per_year)``;
  :func:`market.timeframes.bars_per_year` gives the periods of a timeframe.
- Skewness ``g3`` and kurtosis ``g4`` are the plain (biased) sample moments, and ``g4`` is the
  *non-excess* kurtosis (3 for normal returns), as in Bailey and López de Prado.

What is here:

- :func:`probabilistic_sharpe_ratio` (PSR, Bailey and López de Prado 2012, "The Sharpe Ratio
  Efficient Frontier", Journal of Risk 15(2)): the probability that the true Sharpe exceeds a
  benchmark ``SR*`` given ``n`` observations::

      PSR(SR*) = Phi( (SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2) )

- :func:`expected_max_sharpe`: the expected largest Sharpe among ``N`` independent trials whose
  Sharpes have variance ``V`` and no skill (Bailey, Borwein, López de Prado and Zhu 2014)::

      E[max SR] = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))

- :func:`deflated_sharpe_ratio` (DSR, Bailey and López de Prado 2014, "The Deflated Sharpe Ratio",
  Journal of Portfolio Management 40(5)): the PSR with ``SR* = E[max SR]``.
- :func:`probability_of_backtest_overfitting` (PBO by combinatorially symmetric cross-validation,
  Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest Overfitting", Journal
  of Computational Finance 20(4), 2017; SSRN 2326253).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

logger = logging.getLogger(__name__)

EULER_GAMMA = 0.5772156649015329
"""The Euler-Mascheroni constant of the expected-maximum formula."""

FloatArray = npt.NDArray[np.float64]
Metric = Literal["sharpe", "mean"] | Callable[[FloatArray], FloatArray]

# Beyond this many (combination x strategy) cells CSCV's matrices stop fitting well in memory.
_MAX_CSCV_CELLS = 100_000_000


def _finite_1d(name: str, values: npt.ArrayLike, minimum: int) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}")
    if array.size < minimum:
        raise ValueError(f"{name} must hold at least {minimum} observations; got {array.size}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name} must be finite; got {array[bad[0]]} at index {int(bad[0])}")
    return array


def _check_n_obs(n_obs: int) -> int:
    if isinstance(n_obs, bool) or not isinstance(n_obs, int | np.integer):
        raise TypeError(f"n_obs must be an integer; got {n_obs!r}")
    if n_obs < 2:
        raise ValueError(f"n_obs must be at least 2 observations; got {n_obs}")
    return int(n_obs)


def _check_finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    return float(value)


# --- Sharpe ratios ------------------------------------------------------------------------------


def sharpe_ratio(returns: npt.ArrayLike) -> float:
    """Per-period Sharpe ratio ``mean / std`` (``ddof=1``) of a return series.

    Raises when the series has fewer than 2 observations, a NaN or infinity, or no variance.
    """
    values = _finite_1d("returns", returns, 2)
    std = float(values.std(ddof=1))
    if std == 0.0:
        raise ValueError("returns have zero variance: the Sharpe ratio is undefined")
    return float(values.mean()) / std


def annualize_sharpe(sharpe: float, periods_per_year: float) -> float:
    """A per-period Sharpe times ``sqrt(periods_per_year)`` (e.g. 8760 for 1h crypto bars)."""
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be positive; got {periods_per_year}")
    return sharpe * math.sqrt(periods_per_year)


def per_period_sharpe(annual_sharpe: float, periods_per_year: float) -> float:
    """The inverse of :func:`annualize_sharpe`."""
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be positive; got {periods_per_year}")
    return annual_sharpe / math.sqrt(periods_per_year)


@dataclass(frozen=True)
class SharpeStats:
    """What the PSR needs from a return series: per-period Sharpe, length, skewness, kurtosis."""

    sharpe: float
    n_obs: int
    skew: float = 0.0
    kurtosis: float = 3.0

    @classmethod
    def from_returns(cls, returns: npt.ArrayLike) -> SharpeStats:
        values = _finite_1d("returns", returns, 2)
        return cls(
            sharpe=sharpe_ratio(values),
            n_obs=int(values.size),
            skew=float(stats.skew(values)),
            kurtosis=float(stats.kurtosis(values, fisher=False)),
        )


def _variance_term(sharpe: float, skew: float, kurtosis: float) -> float:
    """``1 - g3 SR + (g4 - 1)/4 SR^2``: (n - 1) times the variance of the Sharpe estimator."""
    term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not term > 0.0:
        # Sample moments always satisfy g4 >= 1 + g3^2, which keeps the term positive.
        raise ValueError(
            f"skew {skew} and kurtosis {kurtosis} are inconsistent (kurtosis must be at least "
            f"1 + skew^2 = {1 + skew**2}): the Sharpe ratio's variance would be {term}"
        )
    return term


def sharpe_standard_error(
    sharpe: float, n_obs: int, *, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Standard error of an estimated per-period Sharpe ratio under non-normal IID returns."""
    n_obs = _check_n_obs(n_obs)
    return math.sqrt(_variance_term(sharpe, skew, kurtosis) / (n_obs - 1))


def probabilistic_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    *,
    benchmark: float = 0.0,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """PSR: the probability that the true per-period Sharpe exceeds ``benchmark``.

    ``sharpe`` and ``benchmark`` are per period (not annualized), ``kurtosis`` is non-excess.
    """
    n_obs = _check_n_obs(n_obs)
    for name, value in (("sharpe", sharpe), ("benchmark", benchmark), ("skew", skew)):
        _check_finite(name, value)
    _check_finite("kurtosis", kurtosis)
    z = (
        (sharpe - benchmark)
        * math.sqrt(n_obs - 1)
        / math.sqrt(_variance_term(sharpe, skew, kurtosis))
    )
    return float(stats.norm.cdf(z))


def probabilistic_sharpe_ratio_of(returns: npt.ArrayLike, *, benchmark: float = 0.0) -> float:
    """:func:`probabilistic_sharpe_ratio` of a return series, with the series' own moments."""
    s = SharpeStats.from_returns(returns)
    return probabilistic_sharpe_ratio(
        s.sharpe, s.n_obs, benchmark=benchmark, skew=s.skew, kurtosis=s.kurtosis
    )


def minimum_track_record_length(
    sharpe: float,
    *,
    benchmark: float = 0.0,
    skew: float = 0.0,
    kurtosis: float = 3.0,
    confidence: float = 0.95,
) -> float:
    """Observations needed for PSR(benchmark) to reach ``confidence`` (Bailey, López de Prado).

    ``MinTRL = 1 + (1 - g3 SR + (g4 - 1)/4 SR^2) (Phi^-1(confidence) / (SR - SR*))^2``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1; got {confidence}")
    if not sharpe > benchmark:
        raise ValueError(
            f"sharpe {sharpe} must exceed benchmark {benchmark}: no track record is long enough"
        )
    z = float(stats.norm.ppf(confidence))
    return 1.0 + _variance_term(sharpe, skew, kurtosis) * (z / (sharpe - benchmark)) ** 2


# --- Selection bias: the expected maximum and the deflated Sharpe ---------------------------------


def _expected_max_standard_normal(n_trials: int) -> float:
    if isinstance(n_trials, bool) or not isinstance(n_trials, int | np.integer):
        raise TypeError(f"n_trials must be an integer; got {n_trials!r}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1; got {n_trials}")
    if n_trials == 1:
        return 0.0  # the maximum of a single draw is the draw: its expectation is the mean
    return (1.0 - EULER_GAMMA) * float(stats.norm.ppf(1.0 - 1.0 / n_trials)) + EULER_GAMMA * float(
        stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    )


def expected_max_sharpe(
    n_trials: int, sharpe_variance: float, *, mean_sharpe: float = 0.0
) -> float:
    """Expected largest Sharpe among ``n_trials`` independent trials with no skill.

    ``sharpe_variance`` is the variance of the trials' Sharpe ratios, in the same units as the
    result (per period, or annualized if the variance is). ``n_trials == 1`` gives ``mean_sharpe``.
    """
    if not (math.isfinite(sharpe_variance) and sharpe_variance >= 0.0):
        raise ValueError(f"sharpe_variance must be finite and non-negative; got {sharpe_variance}")
    return mean_sharpe + math.sqrt(sharpe_variance) * _expected_max_standard_normal(n_trials)


def minimum_backtest_length(n_trials: int, *, max_sharpe: float = 1.0) -> float:
    """Years of data below which ``n_trials`` skill-less trials are expected to show an annualized
    in-sample Sharpe of ``max_sharpe`` (Bailey, Borwein, López de Prado and Zhu 2014).

    An annualized Sharpe estimated over ``y`` years has variance about ``1 / y``, so the expected
    maximum is ``E[max Z] / sqrt(y)``; solving for ``y`` gives ``(E[max Z] / max_sharpe)^2``.
    """
    if not max_sharpe > 0.0:
        raise ValueError(f"max_sharpe must be positive; got {max_sharpe}")
    return (_expected_max_standard_normal(n_trials) / max_sharpe) ** 2


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    *,
    n_trials: int,
    sharpe_variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """DSR: the PSR of the selected strategy against the expected maximum Sharpe of the search.

    ``sharpe`` is the selected strategy's per-period Sharpe, ``n_obs`` its number of returns,
    ``skew``/``kurtosis`` (non-excess) its moments; ``n_trials`` is how many configurations were
    tried and ``sharpe_variance`` the variance of their per-period Sharpe ratios.
    """
    benchmark = expected_max_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe_ratio(
        sharpe, n_obs, benchmark=benchmark, skew=skew, kurtosis=kurtosis
    )


def deflated_sharpe_ratio_of(returns: npt.ArrayLike, trial_sharpes: npt.ArrayLike) -> float:
    """DSR of the selected strategy's ``returns`` given the per-period Sharpes of every trial.

    ``trial_sharpes`` holds one Sharpe per configuration tried (the selected one included): their
    count is ``n_trials`` and their sample variance (``ddof=1``) is ``sharpe_variance``.
    """
    trials = _finite_1d("trial_sharpes", trial_sharpes, 2)
    s = SharpeStats.from_returns(returns)
    return deflated_sharpe_ratio(
        s.sharpe,
        s.n_obs,
        n_trials=int(trials.size),
        sharpe_variance=float(trials.var(ddof=1)),
        skew=s.skew,
        kurtosis=s.kurtosis,
    )


# --- Probability of backtest overfitting (CSCV) --------------------------------------------


@dataclass(frozen=True, eq=False)
class PBOResult:
    """The outcome of combinatorially symmetric cross-validation.

    Per combination ``c`` (``n_combinations = C(n_splits, n_splits / 2)`` of them, in
    ``itertools.combinations`` order of the in-sample blocks): ``best[c]`` is the strategy with the
    best in-sample performance, ``oos_rank[c]`` its relative rank out of sample ``w`` in (0, 1)
    (rank / (N + 1), 1 = worst, ties averaged), ``logits[c] = log(w / (1 - w))``, and
    ``is_performance`` / ``oos_performance`` the chosen strategy's metric in and out of sample.
    """

    pbo: float
    """Share of combinations whose logit is <= 0: the IS-best strategy ranked at or below the OOS
    median."""
    logits: FloatArray
    oos_rank: FloatArray
    best: npt.NDArray[np.int64]
    is_performance: FloatArray
    oos_performance: FloatArray
    degradation_slope: float
    """Slope of OOS on IS performance of the chosen strategy across combinations (negative: the
    better it looked in sample, the worse it did out of sample). NaN when IS performance is
    constant."""
    degradation_intercept: float
    prob_oos_loss: float
    """Share of combinations where the chosen strategy's OOS performance is below zero."""
    n_splits: int
    n_strategies: int
    rows_used: int
    """Rows of the matrix used: the oldest ``T mod n_splits`` rows are dropped (even blocks)."""

    @property
    def n_combinations(self) -> int:
        return int(self.logits.size)


def _check_matrix(performance: npt.ArrayLike, n_splits: int) -> FloatArray:
    matrix = np.asarray(performance, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(
            f"performance must be a 2-D matrix (rows = periods, columns = strategies); "
            f"got shape {matrix.shape}"
        )
    rows, columns = matrix.shape
    if columns < 2:
        raise ValueError(f"performance must hold at least 2 strategies (columns); got {columns}")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise TypeError(f"n_splits must be an integer; got {n_splits!r}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even number of at least 2; got {n_splits}")
    if rows < n_splits:
        raise ValueError(
            f"performance has {rows} rows; n_splits {n_splits} needs at least one row per block"
        )
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        row, column = (int(v) for v in bad[0])
        raise ValueError(
            f"performance must be finite; got {matrix[row, column]} at row {row}, column {column}"
        )
    n_combinations = math.comb(n_splits, n_splits // 2)
    if n_combinations * columns > _MAX_CSCV_CELLS:
        raise ValueError(
            f"n_splits {n_splits} gives {n_combinations} combinations x {columns} strategies; "
            f"use fewer splits (16 is the usual choice)"
        )
    return matrix


def _sharpe_from_moments(count: int, total: FloatArray, centered_sq: FloatArray) -> FloatArray:
    mean = total / count
    std = np.sqrt(np.maximum(centered_sq, 0.0) / (count - 1))
    # A strategy that never moves (always flat) has no Sharpe; rank it as 0, not as NaN.
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 0.0, mean / std, np.sign(mean) * np.inf)
    return np.where((std == 0.0) & (mean == 0.0), 0.0, sharpe)


def _cscv_metrics(
    blocks: FloatArray, mask: npt.NDArray[np.bool_], metric: Metric
) -> tuple[FloatArray, FloatArray]:
    """In- and out-of-sample metric per (combination, strategy). ``blocks`` is (S, L, N)."""
    n_blocks, length, _ = blocks.shape
    half = n_blocks // 2
    if callable(metric):
        in_sample, out_sample = [], []
        for chosen in mask:
            in_sample.append(np.asarray(metric(blocks[chosen].reshape(half * length, -1))))
            out_sample.append(np.asarray(metric(blocks[~chosen].reshape(half * length, -1))))
        return np.asarray(in_sample, dtype=np.float64), np.asarray(out_sample, dtype=np.float64)
    # Sufficient statistics per block, combined by matrix products: no loop over combinations.
    block_mean = blocks.mean(axis=1)  # (S, N)
    block_m2 = ((blocks - block_mean[:, None, :]) ** 2).sum(axis=1)
    count = half * length
    weights = mask.astype(np.float64)
    results = []
    for side in (weights, 1.0 - weights):
        mean = side @ block_mean / half
        if metric == "mean":
            results.append(mean)
            continue
        if count < 2:
            raise ValueError(
                f"metric 'sharpe' needs at least 2 rows in sample; {n_blocks} blocks of {length} "
                f"row(s) give {count}"
            )
        m2 = side @ block_m2 + length * (side @ block_mean**2) - count * mean**2
        results.append(_sharpe_from_moments(count, mean * count, m2))
    return results[0], results[1]


def probability_of_backtest_overfitting(
    performance: npt.ArrayLike, n_splits: int = 16, *, metric: Metric = "sharpe"
) -> PBOResult:
    """PBO of choosing the best of N strategies, by combinatorially symmetric cross-validation.

    ``performance`` is a T x N matrix: one row per period (oldest first), one column per strategy
    (e.g. per-bar returns of each configuration tried). The rows are cut into ``n_splits`` (S, even)
    contiguous blocks of equal length (the oldest ``T mod S`` rows are dropped). For each of the
    ``C(S, S/2)`` ways to pick half the blocks as in-sample (the rest out of sample), the
    strategy with the best in-sample ``metric`` is chosen and its out-of-sample rank among all N
    strategies is turned into a logit. PBO is the share of logits <= 0.

    ``metric`` is ``"sharpe"`` (per-period, ``ddof=1``; default, as in the paper), ``"mean"``, or a
    callable mapping a (rows x N) array to N scores (looped over combinations: slower).
    """
    matrix = _check_matrix(performance, n_splits)
    if not (callable(metric) or metric in ("sharpe", "mean")):
        raise ValueError(f"metric must be 'sharpe', 'mean' or a callable; got {metric!r}")
    rows, n_strategies = matrix.shape
    length = rows // n_splits
    dropped = rows - length * n_splits
    if dropped:
        logger.debug("CSCV drops the oldest %d rows to cut %d even blocks", dropped, n_splits)
    blocks = matrix[dropped:].reshape(n_splits, length, n_strategies)
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)), dtype=np.intp)
    mask = np.zeros((len(combos), n_splits), dtype=bool)
    mask[np.arange(len(combos))[:, None], combos] = True

    in_sample, out_sample = _cscv_metrics(blocks, mask, metric)
    if in_sample.shape != (len(combos), n_strategies) or out_sample.shape != in_sample.shape:
        raise ValueError(
            f"metric must return one score per strategy ({n_strategies}); got shape "
            f"{in_sample.shape[1:]}"
        )
    if np.isnan(in_sample).any() or np.isnan(out_sample).any():
        raise ValueError("metric returned NaN for some combination")

    combo_rows = np.arange(len(combos))
    best = np.argmax(in_sample, axis=1).astype(np.int64)
    is_best = in_sample[combo_rows, best]
    oos_best = out_sample[combo_rows, best]
    below = (out_sample < oos_best[:, None]).sum(axis=1)
    equal = (out_sample == oos_best[:, None]).sum(axis=1)  # includes the chosen strategy itself
    rank = below + (equal + 1) / 2.0
    oos_rank = rank / (n_strategies + 1)
    logits = np.log(oos_rank / (1.0 - oos_rank))

    finite = np.isfinite(is_best) & np.isfinite(oos_best)
    if finite.sum() >= 2 and np.ptp(is_best[finite]) > 0.0:
        slope, intercept = np.polyfit(is_best[finite], oos_best[finite], 1)
    else:
        slope = intercept = float("nan")

    for array in (logits, oos_rank, best, is_best, oos_best):
        array.setflags(write=False)
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        oos_rank=oos_rank,
        best=best,
        is_performance=is_best,
        oos_performance=oos_best,
        degradation_slope=float(slope),
        degradation_intercept=float(intercept),
        prob_oos_loss=float(np.mean(oos_best < 0.0)),
        n_splits=n_splits,
        n_strategies=n_strategies,
        rows_used=length * n_splits,
    )
