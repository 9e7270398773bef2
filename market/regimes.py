"""Market regimes: every bar is bull_trending, bear_trending, volatile_ranging or calm_ranging.

A regime is read from two numbers measured over a trailing window that ends at the bar's close
(so no bar's regime uses anything after it):

- ``trend``: the window's simple return, ``close[t] / close[t - n] - 1``;
- ``vol``: the annualized realized volatility, the standard deviation of the window's one-bar log
  returns times ``sqrt(bars_per_year)``.

``n`` is the window (a duration such as ``7d``) in bars of the series' timeframe, so the same
thresholds mean the same thing on 5m and 1h candles. Rules are tried in order and the first whose
bounds hold names the bar; a rule without bounds catches the rest. Bars with less than a full window
of history have no regime (``""``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from market import kernels
from market.series import Candles
from market.timeframes import bars_in, bars_per_year

REGIMES: tuple[str, ...] = ("bull_trending", "bear_trending", "volatile_ranging", "calm_ranging")
NO_REGIME = ""


class RuleError(ValueError):
    """A bad regime rule, naming the field (``name``, ``window``, ``rules``) it is about, so a
    config loader can report the dotted key (``regimes.rules.0.name``)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class RegimeRule:
    """Bounds (inclusive minimum, exclusive maximum; None is unbounded) that name a regime."""

    name: str
    trend_min: float | None = None
    trend_max: float | None = None
    vol_min: float | None = None
    vol_max: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.name not in REGIMES:
            raise RuleError("name", f"must be one of {', '.join(REGIMES)}; got {self.name!r}")


@dataclass(frozen=True)
class RegimeRules:
    """The ordered rules and the trailing window they are measured over."""

    window: str = "7d"
    rules: tuple[RegimeRule, ...] = (
        RegimeRule("bull_trending", trend_min=0.05, description="rose 5% or more over the window"),
        RegimeRule("bear_trending", trend_max=-0.05, description="fell 5% or more over the window"),
        RegimeRule(
            "volatile_ranging",
            vol_min=0.6,
            description="no trend, annualized volatility of 60% or more",
        ),
        RegimeRule("calm_ranging", description="no trend, annualized volatility below 60%"),
    )

    def __post_init__(self) -> None:
        try:
            bars_in(self.window, "1m")
        except ValueError as exc:
            raise RuleError("window", str(exc)) from None
        names = [rule.name for rule in self.rules]
        if sorted(names) != sorted(REGIMES):
            raise RuleError(
                "rules", f"must name each of {', '.join(REGIMES)} exactly once; got {names}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, as a run stores them (``RunRecord.settings["regimes"]``)."""
        return {"window": self.window, "rules": [asdict(rule) for rule in self.rules]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "regimes") -> RegimeRules:
        """The rules of :meth:`to_dict` (or a config's ``regimes`` section); ValueError naming
        ``where`` and the bad key or value."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} must be a mapping with window and rules; got {raw!r}")
        unknown = sorted(set(raw) - {"window", "rules"})
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: window, rules)")
        rules = []
        for i, rule in enumerate(raw.get("rules") or ()):
            try:
                rules.append(RegimeRule(**rule))
            except RuleError as exc:
                raise ValueError(f"{where}.rules.{i}.{exc.field}: {exc.detail}") from None
            except TypeError as exc:
                raise ValueError(f"{where}.rules.{i}: {exc}") from None
        try:
            return cls(window=str(raw.get("window", "7d")), rules=tuple(rules))
        except RuleError as exc:
            raise ValueError(f"{where}.{exc.field}: {exc.detail}") from None

    def digest(self) -> str:
        """Short hash of the rules: equal rules, equal digest (whatever produced them)."""
        payload = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


# --- computation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegimePeriod:
    """A run of consecutive bars with one regime; ``end_ts`` is the open time of its last bar."""

    regime: str
    start_ts: int
    end_ts: int
    bars: int


def _window_bars(window: str, timeframe: str) -> int:
    n = bars_in(window, timeframe)
    if n < 2:
        raise ValueError(
            f"regimes.window must span at least 2 bars of {timeframe}; got {window!r} ({n} bar)"
        )
    return n


def trend_and_vol(
    candles: Candles, timeframe: str, window: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The two regime measures of every bar over the trailing ``window`` (see the module doc).

    ``vol`` is the sample standard deviation (ddof 1) of the ``n`` one-bar log returns ending at the
    bar, annualized with ``sqrt(bars_per_year(timeframe))``. Both are NaN for the first ``n`` bars.
    The window counts rows, so a data gap inside it is not bridged by time.
    """
    if "close" not in candles:
        raise ValueError(f"candles must have a 'close' column; got {list(candles)}")
    n = _window_bars(window, timeframe)
    close = np.asarray(candles["close"], dtype=np.float64)
    trend = kernels.returns(close, n)
    vol = kernels.realized_volatility(close, n) * np.sqrt(bars_per_year(timeframe))
    return trend, vol


def _bounds(rule: RegimeRule) -> list[tuple[str, str, float]]:
    """(measure, "min"|"max", bound) for each bound the rule sets."""
    out: list[tuple[str, str, float]] = []
    for measure in ("trend", "vol"):
        for side in ("min", "max"):
            bound = getattr(rule, f"{measure}_{side}")
            if bound is not None:
                out.append((measure, side, float(bound)))
    return out


def _inside_margin(x: npt.NDArray[np.float64], side: str, bound: float) -> npt.NDArray[np.float64]:
    """Signed distance inside a bound (negative outside), in units of the bound's magnitude."""
    scale = abs(bound) if bound != 0.0 else 1.0
    return (x - bound) / scale if side == "min" else (bound - x) / scale


def _classify(
    trend: npt.NDArray[np.float64], vol: npt.NDArray[np.float64], rules: RegimeRules
) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float64]]:
    measures = {"trend": trend, "vol": vol}
    valid = ~(np.isnan(trend) | np.isnan(vol))
    labels = np.full(len(trend), NO_REGIME, dtype=f"<U{max(len(r) for r in REGIMES)}")
    confidence = np.full(len(trend), np.nan)
    unassigned = valid.copy()
    # Distance a bar would have to move to enter any earlier rule: a bar named by rule i failed
    # rules 0..i-1, and crossing back into one of them would rename it.
    to_earlier = np.full(len(trend), np.inf)
    with np.errstate(invalid="ignore"):
        for rule in rules.rules:
            bounds = _bounds(rule)
            inside = np.full(len(trend), np.inf)
            holds = valid.copy()
            for measure, side, bound in bounds:
                x = measures[measure]
                holds &= (x >= bound) if side == "min" else (x < bound)
                inside = np.fmin(inside, _inside_margin(x, side, bound))
            hit = unassigned & holds
            labels[hit] = rule.name
            confidence[hit] = np.clip(np.fmin(inside, to_earlier)[hit], 0.0, 1.0)
            unassigned &= ~hit
            if bounds:
                outside = np.zeros(len(trend))
                for measure, side, bound in bounds:
                    outside = np.fmax(outside, -_inside_margin(measures[measure], side, bound))
                to_earlier = np.fmin(to_earlier, outside)
    return labels, confidence


def classify_regimes(
    candles: Candles, timeframe: str, rules: RegimeRules | None = None
) -> npt.NDArray[np.str_]:
    """The regime name of every bar (the first rule whose bounds hold), NO_REGIME without a window.

    A bar that no rule names (rules without a catch-all) is NO_REGIME too.
    """
    return regime_labels(candles, timeframe, rules)[0]


def regime_confidence(
    candles: pd.DataFrame, timeframe: str, rules: RegimeRules | None = None
) -> npt.NDArray[np.float64]:
    """How far inside its regime each bar is, in [0, 1] (NaN for NO_REGIME bars).

    For each threshold that could rename the bar (its own rule's bounds, and the bounds of every
    earlier rule it failed), take the bar's distance to it in units of the threshold's magnitude
    (``|x - b| / |b|``, ``|x - b|`` when ``b`` is 0); the confidence is the smallest such distance,
    capped at 1. For an earlier rule with several bounds the distance to entering it is its largest
    violation. A bar exactly on a boundary reads 0; a bar a full threshold away from every boundary
    reads 1. With the defaults: trend 0.075 in bull reads 0.5; trend 0.04, vol 0.3 in calm reads
    0.2 (0.01 from the 0.05 bull threshold).
    """
    return regime_frame(candles, timeframe, rules)["confidence"].to_numpy(dtype="float64")


def regime_labels(
    candles: Candles, timeframe: str, rules: RegimeRules | None = None
) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float64]]:
    """The regime name and confidence of every candle as arrays (``regime_frame`` without the
    frame: what the live service asks of each candle set)."""
    rules = rules or RegimeRules()
    return _classify(*trend_and_vol(candles, timeframe, rules.window), rules)


def regime_frame(
    candles: pd.DataFrame, timeframe: str, rules: RegimeRules | None = None
) -> pd.DataFrame:
    """``ts, trend, vol, regime, confidence`` for every candle (same index), in one pass."""
    rules = rules or RegimeRules()
    trend, vol = trend_and_vol(candles, timeframe, rules.window)
    labels, confidence = _classify(trend, vol, rules)
    return pd.DataFrame(
        {
            "ts": candles["ts"].to_numpy(),
            "trend": trend,
            "vol": vol,
            "regime": labels,
            "confidence": confidence,
        },
        index=candles.index,
    )


def _as_labels(labels: Sequence[str] | npt.NDArray[Any] | pd.Series) -> npt.NDArray[np.str_]:
    array = np.asarray(labels, dtype=str)
    unknown = sorted(set(np.unique(array).tolist()) - {*REGIMES, NO_REGIME})
    if unknown:
        raise ValueError(f"regime labels must be one of {', '.join(REGIMES)} or ''; got {unknown}")
    return array


def regime_shares(labels: Sequence[str] | npt.NDArray[Any] | pd.Series) -> dict[str, float]:
    """Share of each regime among the bars that have one (NO_REGIME bars are left out).

    Every regime is a key (in REGIMES order), 0.0 when absent; the shares sum to 1, or are all 0.0
    when no bar has a regime.
    """
    array = _as_labels(labels)
    named = array[array != NO_REGIME]
    total = len(named)
    return {name: (float(np.sum(named == name)) / total if total else 0.0) for name in REGIMES}


def regime_periods(
    ts: Sequence[int] | npt.NDArray[Any] | pd.Series,
    labels: Sequence[str] | npt.NDArray[Any] | pd.Series,
) -> list[RegimePeriod]:
    """Runs of consecutive bars (rows) with one regime, in order; NO_REGIME runs are left out."""
    times = np.asarray(ts, dtype=np.int64)
    array = _as_labels(labels)
    if len(times) != len(array):
        raise ValueError(
            f"ts and labels must have the same length; got {len(times)} and {len(array)}"
        )
    if len(array) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, array[1:] != array[:-1]])
    ends = np.r_[starts[1:], len(array)] - 1
    return [
        RegimePeriod(str(array[s]), int(times[s]), int(times[e]), int(e - s + 1))
        for s, e in zip(starts, ends, strict=True)
        if array[s] != NO_REGIME
    ]
