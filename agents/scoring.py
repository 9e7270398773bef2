"""Out-of-sample scoring of a child's predictions: scores -> positions -> backtest -> metrics.

Positions come from the child's :class:`~agents.positions.PositionRule` (its threshold, hysteresis
band, minimum hold, quantized levels and volatility target; a bare float is the plain threshold
rule: ``sign(score)`` where ``|score| > threshold``, else flat, as ``positions_from_scores``). They
follow
``market.backtest``'s convention (decided at the close of t, held to the close of t + 1, the fee
charged on every change). ``breaks`` marks the rows whose next scored row is not the next bar of
their series (e.g. between non-adjacent test segments): the position is closed there, so nothing
is held across bars that were not scored.

``direction_hit_rate`` is the share of rows with a non-zero position whose sign matches the
**next bar's** return, before fees (for a panel: the symbol's next-bar return minus the mean of
the panel's symbols at that timestamp). ``metrics["hit_rate"]`` keeps ``market.metrics``'s
meaning: the share of in-market bars whose net return is positive.

A panel (``score_panel``) is market-neutral: each symbol trades its rule applied to ``score - mean
score of its timestamp`` (per symbol, in time order), is backtested on its own rows, and the portfolio return of a
timestamp is the equal-weight mean of its symbols' bar returns. Trade metrics pool the symbols'
trades (PnL read as the trade's return); per regime a timestamp takes the most common regime of its
symbols and a bar's return is attributed to the previous timestamp's decision (the trading cost
of a decision lands with the next bar: an approximation of ``market.metrics.metrics_by_regime``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from agents.positions import PositionRule
from market.backtest import DEFAULT_FEE_BPS, backtest, bar_returns
from market.metrics import TradeOutcomes, compute_metrics, metrics_by_regime
from market.timeframes import bars_per_year

__all__ = [
    "AucInterval",
    "OosScore",
    "as_rule",
    "auc_bounds",
    "auc_interval",
    "auc_metrics",
    "classify_metrics",
    "hit_share",
    "independent_bets",
    "positions_from_scores",
    "rank_positions",
    "roc_auc",
    "score_panel",
    "score_pooled",
    "score_series",
]


@dataclass(frozen=True, eq=False)
class OosScore:
    """Positions (one per scored row), metrics and metrics per regime."""

    position: np.ndarray
    metrics: dict[str, float]
    per_regime: dict[str, dict[str, float]]


def positions_from_scores(scores: np.ndarray, threshold: float) -> np.ndarray:
    """``sign(score)`` where ``|score| > threshold``, else 0."""
    s = np.asarray(scores, dtype=np.float64)
    return np.where(np.abs(s) > threshold, np.sign(s), 0.0)


def rank_positions(scores: np.ndarray, ts: np.ndarray, threshold: float) -> np.ndarray:
    """Panel positions: the score minus the mean score of its timestamp, then thresholded."""
    s = np.asarray(scores, dtype=np.float64)
    _, inverse = np.unique(ts, return_inverse=True)
    mean = np.bincount(inverse, s) / np.bincount(inverse)
    return positions_from_scores(s - mean[inverse], threshold)


def as_rule(rule: PositionRule | float) -> PositionRule:
    """A rule, or the plain threshold rule of a bare threshold."""
    return rule if isinstance(rule, PositionRule) else PositionRule(threshold=float(rule))


def hit_share(position: np.ndarray, realized: np.ndarray) -> float:
    """Share of non-zero positions whose sign matches ``realized`` (NaN entries skipped)."""
    known = (position != 0) & np.isfinite(realized)
    if not known.any():
        return math.nan
    return float(np.mean(np.sign(position[known]) == np.sign(realized[known])))


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {name: float(np.asarray(value).reshape(-1)[0]) for name, value in values.items()}


def _breaks(breaks: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool) if breaks is None else np.asarray(breaks, dtype=bool)


def score_series(
    ts: np.ndarray,
    close: np.ndarray,
    scores: np.ndarray,
    rule: PositionRule | float,
    *,
    breaks: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    regimes: np.ndarray | None = None,
    timeframe: str | None = None,
    fee_bps: float = DEFAULT_FEE_BPS,
) -> OosScore:
    """One series' scored rows (time order) backtested; ``labels`` (the horizon forward return)
    add ``horizon_hit_rate``, ``regimes`` the per-regime metrics."""
    brk = _breaks(breaks, len(scores))
    position = as_rule(rule).positions(scores, close, breaks=brk, timeframe=timeframe,
                                       ts=None if timeframe is None else ts)  # fmt: skip
    frame = pd.DataFrame({"ts": ts, "close": close})
    result = backtest(frame, position, fee_bps=fee_bps, timeframe=timeframe or None)
    realized = np.append(bar_returns(result.close)[1:], np.nan)
    metrics = _floats(result.metrics()) | {"direction_hit_rate": hit_share(position, realized)}
    if labels is not None:
        metrics["horizon_hit_rate"] = hit_share(position, np.asarray(labels, dtype=np.float64))
    per_regime: dict[str, dict[str, float]] = {}
    if regimes is not None:
        names = np.asarray(regimes).astype(str)
        for name, values in result.metrics_by_regime(names).items():
            mask = names == name
            hits = hit_share(position[mask], realized[mask])
            per_regime[name] = _floats(values) | {"direction_hit_rate": hits}
    return OosScore(position, metrics, per_regime)


def score_panel(
    ts: np.ndarray,
    close: np.ndarray,
    group: np.ndarray,
    scores: np.ndarray,
    rule: PositionRule | float,
    *,
    breaks: np.ndarray | None = None,
    regimes: np.ndarray | None = None,
    timeframe: str,
    fee_bps: float = DEFAULT_FEE_BPS,
) -> OosScore:
    """A panel's scored rows (time order within each symbol) as one equal-weight portfolio."""
    broken = _breaks(breaks, len(scores))
    s = np.asarray(scores, dtype=np.float64)
    _, at = np.unique(ts, return_inverse=True)
    relative = s - (np.bincount(at, s) / np.bincount(at))[at]
    position = np.zeros(len(s))
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        position[sel] = as_rule(rule).positions(relative[sel], close[sel], breaks=broken[sel],
                                                timeframe=timeframe, ts=ts[sel])  # fmt: skip
    book = _portfolio(ts, close, group, position, broken, timeframe, fee_bps)
    n = len(book.ret)
    known = np.isfinite(book.next_ret)
    panel_mean = np.bincount(book.at[known], book.next_ret[known], minlength=n) / np.maximum(
        np.bincount(book.at[known], minlength=n), 1
    )
    metrics = book.metrics | {
        "direction_hit_rate": hit_share(position, book.next_ret - panel_mean[book.at])
    }
    return OosScore(position, metrics, book.per_regime(regimes))


@dataclass(frozen=True, eq=False)
class _Book:
    """Symbols backtested on their own rows, as one equal-weight portfolio per timestamp."""

    at: np.ndarray  # timestamp index of every row
    ret: np.ndarray  # portfolio return per timestamp
    exposure: np.ndarray
    traded: np.ndarray
    next_ret: np.ndarray  # every row's next-bar return (NaN at a break or a symbol's last row)
    outcomes: TradeOutcomes
    metrics: dict[str, float]
    bars_per_year: float
    symbol_returns: dict[Any, pd.Series]  # symbol -> its strategy's bar returns by timestamp

    def per_regime(self, regimes: np.ndarray | None) -> dict[str, dict[str, float]]:
        """Per regime: a timestamp takes the most common regime of its symbols, a bar's return
        is attributed to the previous timestamp's decision (see the module doc)."""
        if regimes is None:
            return {}
        n = len(self.ret)
        names, code = np.unique(np.asarray(regimes).astype(str), return_inverse=True)
        counts = np.zeros((n, len(names)))
        np.add.at(counts, (self.at, code), 1.0)
        decision = np.append(self.ret[1:], 0.0)
        per = metrics_by_regime(decision[None], self.exposure[None], self.traded[None],
                                self.outcomes, names[np.argmax(counts, axis=1)],
                                bars_per_year=self.bars_per_year)  # fmt: skip
        return {name: _floats(values) for name, values in per.items()}


def _portfolio(
    ts: np.ndarray, close: np.ndarray, group: np.ndarray, position: np.ndarray,
    broken: np.ndarray, timeframe: str, fee_bps: float,
) -> _Book:  # fmt: skip
    _, at = np.unique(ts, return_inverse=True)
    n = int(at.max()) + 1
    ret, count, exposure, held, traded = (np.zeros(n) for _ in range(5))
    next_ret = np.full(len(position), np.nan)
    entries, trade_returns = [], []
    symbol_returns: dict[Any, pd.Series] = {}
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        p = position[sel]
        res = backtest(pd.DataFrame({"ts": ts[sel], "close": close[sel]}), p,
                       fee_bps=fee_bps, timeframe=timeframe)  # fmt: skip
        next_ret[sel[:-1]] = bar_returns(res.close)[1:]
        next_ret[sel[broken[sel]]] = np.nan  # the next scored row is not the next bar
        for target, values in ((ret, res.returns), (count, 1.0), (exposure, np.abs(p)),
                               (held, np.abs(np.append(0.0, p[:-1]))),
                               (traded, np.abs(np.diff(p, prepend=0.0)))):  # fmt: skip
            np.add.at(target, at[sel], values)
        entries.append(at[sel][res.trades["entry_idx"].to_numpy()])
        trade_returns.append(res.trades["return"].to_numpy())
        symbol_returns[g] = pd.Series(np.asarray(res.returns, dtype=np.float64), index=at[sel])
    ret, exposure, held, traded = ret / count, exposure / count, held / count, traded / count
    entry = np.concatenate(entries).astype(np.int64)
    trade_ret = np.concatenate(trade_returns)
    outcomes = TradeOutcomes(np.zeros(len(entry), dtype=np.int64), trade_ret, trade_ret, entry)
    bpy = bars_per_year(timeframe)
    metrics = _floats(compute_metrics(ret[None], held[None], traded[None], outcomes,
                                      bars_per_year=bpy))  # fmt: skip
    return _Book(at, ret, exposure, traded, next_ret, outcomes, metrics, bpy, symbol_returns)


#: ``(scores, close, breaks) -> positions`` of one symbol's scored rows (time order).
PositionFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
#: The per-symbol metrics a pooled score keeps, as ``<metric>@<symbol>``.
SYMBOL_METRICS = ("sharpe", "total_return", "max_drawdown", "exposure", "direction_hit_rate")


def independent_bets(symbol_returns: Mapping[Any, pd.Series]) -> tuple[float, float]:
    """``(rho, n_eff)``: the mean pairwise correlation of the symbols' strategy returns (over
    their common timestamps; clipped to [0, 1], NaN pairs skipped) and the effective number of
    symbols ``N / (1 + (N - 1) rho)`` (N when no pair is defined)."""
    series = list(symbol_returns.values())
    n = len(series)
    rhos = []
    for i in range(n):
        for j in range(i + 1, n):
            a, b = series[i].align(series[j], join="inner")
            if len(a) > 2 and a.std() > 0 and b.std() > 0:
                rhos.append(float(np.corrcoef(a.to_numpy(), b.to_numpy())[0, 1]))
    rho = float(np.clip(np.mean(rhos), 0.0, 1.0)) if rhos else 0.0
    return rho, n / (1.0 + (n - 1) * rho)


def score_pooled(
    ts: np.ndarray,
    close: np.ndarray,
    group: np.ndarray,
    scores: np.ndarray,
    rule: PositionRule | float,
    *,
    names: Sequence[str] = (),
    breaks: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    regimes: np.ndarray | None = None,
    timeframe: str,
    fee_bps: float = DEFAULT_FEE_BPS,
    positions: PositionFn | None = None,
) -> OosScore:
    """A pooled model's scored rows: every symbol traded by its **own** score (not ranked), the
    metrics those of the equal-weight portfolio of the symbols' strategies (per regime as
    :func:`score_panel`), plus ``<metric>@<symbol>`` for :data:`SYMBOL_METRICS` (``names[g]``
    names group ``g``; the group value otherwise) and the independent bets: ``n_symbols``,
    ``n_oos_bars`` (the portfolio's bars), ``mean_symbol_corr`` and ``n_eff_symbols`` /
    ``n_eff_bets`` (:func:`independent_bets`; bets = effective symbols x bars).

    ``positions`` maps one symbol's scores, closes and breaks to its positions (default: the
    position rule ``rule`` on the symbol's own rows, flat at a break).
    """
    s = np.asarray(scores, dtype=np.float64)
    broken = _breaks(breaks, len(s))
    group = np.asarray(group)
    position = np.zeros(len(s))
    metrics: dict[str, float] = {}
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        if positions is None:
            p = as_rule(rule).positions(s[sel], close[sel], breaks=broken[sel],
                                        timeframe=timeframe, ts=ts[sel])  # fmt: skip
        else:
            p = np.asarray(positions(s[sel], close[sel], broken[sel]), dtype=np.float64)
        position[sel] = p
        res = backtest(pd.DataFrame({"ts": ts[sel], "close": close[sel]}), p,
                       fee_bps=fee_bps, timeframe=timeframe)  # fmt: skip
        realized = np.append(bar_returns(res.close)[1:], np.nan)
        realized[broken[sel]] = np.nan
        own = _floats(res.metrics()) | {"direction_hit_rate": hit_share(p, realized)}
        name = names[int(g)] if len(names) > int(g) else str(g)
        metrics |= {f"{key}@{name}": own.get(key, math.nan) for key in SYMBOL_METRICS}
    book = _portfolio(ts, close, group, position, broken, timeframe, fee_bps)
    rho, n_eff = independent_bets(book.symbol_returns)
    n_bars = float(len(book.ret))
    metrics = book.metrics | metrics | {
        "direction_hit_rate": hit_share(position, book.next_ret),
        "n_symbols": float(len(book.symbol_returns)), "n_oos_bars": n_bars,
        "mean_symbol_corr": rho, "n_eff_symbols": n_eff, "n_eff_bets": n_eff * n_bars,
    }  # fmt: skip
    if labels is not None:
        metrics["horizon_hit_rate"] = hit_share(position, np.asarray(labels, dtype=np.float64))
    return OosScore(position, metrics, book.per_regime(regimes))


def roc_auc(target: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN with a single class."""
    pos = np.asarray(target) == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = pd.Series(np.asarray(score, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@dataclass(frozen=True)
class AucInterval:
    """An AUC with its DeLong standard error and the two-sided interval at ``level``
    (``auc -+ z * se``, clipped to [0, 1]); ``n_pos``/``n_neg`` count the two classes."""

    auc: float
    se: float
    low: float
    high: float
    level: float
    n_pos: int
    n_neg: int

    def at(self, level: float) -> tuple[float, float]:
        """The interval's ``(low, high)`` at another ``level`` (same AUC and standard error)."""
        return auc_bounds(self.auc, self.se, level)


def auc_bounds(auc: float, se: float, level: float) -> tuple[float, float]:
    """The two-sided interval ``auc -+ z se`` at ``level``, clipped to [0, 1] (NaN when the AUC or
    its standard error is not finite)."""
    if not (isinstance(level, float | int) and 0.0 < level < 1.0):
        raise ValueError(f"level must be a number strictly between 0 and 1; got {level!r}")
    if not (math.isfinite(auc) and math.isfinite(se)):
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    return max(auc - z * se, 0.0), min(auc + z * se, 1.0)


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (O(n log n))."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mid = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mid, ends - starts)
    return ranks


def auc_interval(target: np.ndarray, score: np.ndarray, level: float = 0.95) -> AucInterval:
    """The AUC of ``score`` for the 0/1 ``target`` with DeLong's standard error, by the fast
    midrank algorithm of Sun and Xu (2014, IEEE SPL 21(11)), O(n log n).

    With ``m`` positives ``X`` and ``n`` negatives ``Y``: the structural components are
    ``V10_i = (rank of X_i among all - rank among X) / n`` (the share of negatives X_i beats, ties
    half) and ``V01_j = 1 - (rank of Y_j among all - rank among Y) / m``; ``AUC = mean(V10)`` and
    ``se^2 = var(V10) / m + var(V01) / n`` (sample variances). The interval is ``AUC -+ z * se``
    clipped to [0, 1] (as pROC's ``ci.auc(method="delong")``). With fewer than two rows of a class
    the standard error and interval are NaN (the AUC is NaN with none).
    """
    y = np.asarray(target)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"target and score must be 1-d of one length; got {y.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"score must be finite; {int((~np.isfinite(s)).sum())} values are not")
    pos = y == 1
    x, z = s[pos], s[~pos]
    m, n = len(x), len(z)
    if m == 0 or n == 0:
        low, high = auc_bounds(math.nan, math.nan, level)
        return AucInterval(math.nan, math.nan, low, high, float(level), m, n)
    combined = _midranks(np.concatenate([x, z]))
    v10 = (combined[:m] - _midranks(x)) / n
    v01 = 1.0 - (combined[m:] - _midranks(z)) / m
    auc = float(v10.mean())
    se = math.nan
    if m >= 2 and n >= 2:
        se = math.sqrt(float(np.var(v10, ddof=1)) / m + float(np.var(v01, ddof=1)) / n)
    low, high = auc_bounds(auc, se, level)
    return AucInterval(auc, se, low, high, float(level), m, n)


def auc_metrics(target: np.ndarray, score: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """``auc_se``, ``auc_low``, ``auc_high`` (at ``level``), ``n_pos`` and ``n_neg`` of
    :func:`auc_interval`, as a child's metrics carry them."""
    found = auc_interval(target, score, level)
    return {"auc_se": found.se, "auc_low": found.low, "auc_high": found.high,
            "n_pos": float(found.n_pos), "n_neg": float(found.n_neg)}  # fmt: skip


def classify_metrics(target: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """auc, precision, recall, f1 (positive = ``prob > threshold``), base_rate, called_rate,
    brier and log_loss. Never plain accuracy: the rug-pull set is 9 in 10 positive."""
    y = np.asarray(target, dtype=np.float64)
    called = prob > threshold
    tp = float(np.sum(called & (y == 1)))
    precision = tp / float(called.sum()) if called.any() else math.nan
    recall = tp / float(np.sum(y == 1)) if (y == 1).any() else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else math.nan
    p = np.clip(prob, 1e-12, 1 - 1e-12)
    return {
        "auc": roc_auc(y, prob), "precision": precision, "recall": recall, "f1": f1,
        "base_rate": float(y.mean()), "called_rate": float(called.mean()),
        "brier": float(np.mean((prob - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
    }  # fmt: skip
