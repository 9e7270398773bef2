"""Cost-aware positions: a child's scores turned into positions that do not churn (pure numpy).

Fees are charged on every unit of change (``market.backtest``), so a rule that flips on every bar
pays for itself many times over. :class:`PositionRule` holds the genes that decide how a score
becomes a position, and :meth:`PositionRule.positions` applies them, causally: the position at row
``i`` reads only the scores and closes of rows ``<= i``.

- ``threshold``: a position is entered when ``|score| > threshold``.
- ``levels``: quantized sizes. The magnitude ``|score|`` in ``(threshold, 1]`` is cut into
  ``levels`` equal bins with lower edges ``b_j = threshold + (j - 1) * (1 - threshold) / levels``
  (``j = 1..levels``); the level is the number of edges ``|score|`` exceeds, the position
  ``sign(score) * level / levels``. ``levels=1`` is ``{-1, 0, 1}``; ``levels=2`` is
  ``{-1, -.5, 0, .5, 1}``.
- ``band``: hysteresis. A held level ``j`` (in direction ``d``) is kept while ``d * score > b_j -
  band``; it steps down (or out) only when the score in the held direction falls to ``b_j - band``
  or below, steps up as soon as the score exceeds a higher edge, and flips when the score exceeds
  ``threshold`` on the other side. ``band=0`` is no hysteresis.
- ``min_hold``: bars a position is held before it may change. The position may change only on
  bars whose index on the clock (``ts // bar length``, or the row number without ``ts``) is a
  multiple of ``min_hold``: a rebalancing schedule, so two changes are at least ``min_hold`` bars
  apart (going flat is a change too). The schedule is anchored to the clock rather than to the
  last change so that the state does not carry the phase of every earlier change: a replay from
  a later start meets the same schedule (see Serve below).
- ``vol_target`` (annualized; 0 = off): the size is scaled by ``min(vol_target / realized vol,
  max_leverage)``, realized vol being the root mean square of the last ``vol_window`` one-bar log
  returns (those ending at rows ``<= i``), annualized with ``market.timeframes.bars_per_year``. The
  scale is read when the position changes and held with it (rebalancing on every bar's volatility
  drift would pay fees on every bar). Rows whose window is not full yet (the first ``vol_window``
  rows, and as many after a break) are flat. ``max_leverage <= 1`` keeps positions in [-1, 1].

``breaks`` marks rows whose next row is not the next bar (as in ``agents.scoring``): the position
is closed there (whatever ``min_hold`` says) and the state resets: the next row starts flat, with
an empty volatility window.

The default rule (``band=0, min_hold=1, levels=1, vol_target=0``) is ``sign(score)`` where
``|score| > threshold``, exactly ``agents.scoring.positions_from_scores``; a genome without these
genes gets it (:meth:`PositionRule.from_genome`).

**Serving replays a window.** A stateful rule's position depends on the scores before it. Serve
(``serving.ensemble``) scores a member over the last :attr:`PositionRule.warmup` candles and
replays the rule from flat over them (with their ``ts``, so the ``min_hold`` schedule is the
clock's); the served position is the replay's last. ``warmup`` is ``min_hold + WARMUP_SLACK``
(plus ``vol_window`` when volatility targeting is on), and 1 for a stateless rule (``band=0,
min_hold=1, vol_target=0``), whose replay is exact. A stateful rule's replay equals the full
history's position once both have met a bar that decides the state by itself; measured on the BTC
1h training years (2020-2023-03, a 24-bar momentum score, 1,500 bars drawn per rule), a replay of
200 bars beyond the volatility window matched the full history on every drawn bar for bands up to
0.3 (also above the threshold), ``min_hold`` up to 24 and volatility targets 0.25 and 0.5; 48 bars
left up to 7% of them different. A min_hold counted from the last change instead of the clock
carries the phase of earlier changes much longer (band 0.3, 24 bars: 4% to 16% of the bars still
differed after 400 bars). ``WARMUP_SLACK`` is 216 bars (nine days of 1h candles); fewer candles
replay what there is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from market.timeframes import bars_per_year, timeframe_ms

__all__ = ["VOL_WINDOW", "WARMUP_SLACK", "PositionRule"]

#: Bars of one-bar returns behind the realized volatility: one week of 1h bars.
VOL_WINDOW = 168
#: Bars replayed beyond ``min_hold`` (and ``vol_window``) to rebuild a stateful rule's state.
WARMUP_SLACK = 216
#: Genes a genome may leave out, with the values that reproduce the plain threshold rule.
RULE_DEFAULTS: dict[str, float | int] = {"band": 0.0, "min_hold": 1, "levels": 1, "vol_target": 0.0}


def _number(value: Any, name: str, *, low: float, low_open: bool = False,
            high: float = math.inf) -> float:  # fmt: skip
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    number = float(value) if ok else math.nan
    above = number > low if low_open else number >= low
    if not (math.isfinite(number) and above and number <= high):
        rule = f"{'>' if low_open else '>='} {low:g}" + (
            f" and <= {high:g}" if math.isfinite(high) else ""
        )
        raise ValueError(f"{name} must be a finite number {rule}; got {value!r}")
    return number


def _integer(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


@dataclass(frozen=True)
class PositionRule:
    """How a child's scores become positions (see the module doc); checks itself."""

    threshold: float = 0.0
    band: float = 0.0
    min_hold: int = 1
    levels: int = 1
    vol_target: float = 0.0
    vol_window: int = VOL_WINDOW
    max_leverage: float = 1.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "threshold", _number(self.threshold, "threshold", low=0.0))
        set_(self, "band", _number(self.band, "band", low=0.0))
        set_(self, "min_hold", _integer(self.min_hold, "min_hold", 1))
        set_(self, "levels", _integer(self.levels, "levels", 1))
        set_(self, "vol_target", _number(self.vol_target, "vol_target", low=0.0))
        set_(self, "vol_window", _integer(self.vol_window, "vol_window", 2))
        set_(self, "max_leverage", _number(self.max_leverage, "max_leverage", low=0.0,
                                           low_open=True, high=1.0))  # fmt: skip

    @classmethod
    def from_genome(cls, genome: Any, default_threshold: float = 0.0) -> PositionRule:
        """The rule of a genome (an ``agents.genome.Genome`` or a gene mapping): ``threshold``,
        ``band``, ``min_hold``, ``levels``, ``vol_target``; missing genes take the defaults of the
        plain threshold rule. A bad gene raises ValueError naming it and its value."""
        genes: Mapping[str, Any] = genome if isinstance(genome, Mapping) else genome.as_dict()
        values = {"threshold": genes.get("threshold", default_threshold)}
        values |= {name: genes.get(name, default) for name, default in RULE_DEFAULTS.items()}
        try:
            return cls(**values)
        except ValueError as exc:  # the same check, said of the gene
            raise ValueError(f"gene {exc}") from None

    @property
    def stateless(self) -> bool:
        """Whether a row's position depends on its own score alone (no band, hold or vol)."""
        return self.band == 0.0 and self.min_hold == 1 and self.vol_target == 0.0

    @property
    def warmup(self) -> int:
        """Trailing rows Serve replays from flat to rebuild the state (see the module doc)."""
        if self.stateless:
            return 1
        vol = self.vol_window if self.vol_target > 0 else 0
        return vol + self.min_hold + WARMUP_SLACK

    def edges(self) -> np.ndarray:
        """The lower edges ``b_1 .. b_levels`` of the levels' bins."""
        step = max(1.0 - self.threshold, 0.0) / self.levels
        return self.threshold + step * np.arange(self.levels, dtype=np.float64)

    def levels_of(self, scores: np.ndarray) -> np.ndarray:
        """Signed level of each score without state: ``sign(s) * #{j: |s| > b_j}`` (int64)."""
        s = np.asarray(scores, dtype=np.float64)
        count = (np.abs(s)[:, None] > self.edges()[None, :]).sum(axis=1)
        return (np.sign(s) * count).astype(np.int64)

    def positions(
        self,
        scores: np.ndarray,
        close: np.ndarray | None = None,
        *,
        breaks: np.ndarray | None = None,
        timeframe: str | None = None,
        ts: np.ndarray | None = None,
    ) -> np.ndarray:
        """Positions in [-1, 1] of ``scores`` (time order); ``close`` is read only when
        volatility targeting is on, ``ts`` (ms, with ``timeframe``) only to anchor the
        ``min_hold`` schedule (without it, row ``0`` is a schedule bar)."""
        s = np.asarray(scores, dtype=np.float64)
        n = len(s)
        if not np.isfinite(s).all():
            raise ValueError(f"scores must be finite: row {int(np.argmax(~np.isfinite(s)))}")
        brk = np.zeros(n, dtype=bool) if breaks is None else np.asarray(breaks, dtype=bool)
        if brk.shape != (n,):
            raise ValueError(f"breaks must have one entry per score ({n}); got {brk.shape}")
        level = self.levels_of(s)
        if self.stateless:
            out = level / self.levels
            out[brk] = 0.0
            return out
        scale = np.ones(n)
        if self.vol_target > 0:
            scale = self._vol_scale(close, brk, n, timeframe)
        return self._replay(s, level, scale, brk, self._schedule(n, ts, timeframe))

    def _schedule(self, n: int, ts: np.ndarray | None, timeframe: str | None) -> np.ndarray:
        """Whether the position may change at each row (the ``min_hold`` schedule)."""
        if self.min_hold == 1:
            return np.ones(n, dtype=bool)
        if ts is None:
            slot = np.arange(n, dtype=np.int64)
        else:
            if timeframe is None:
                raise ValueError("ts needs the timeframe (the min_hold schedule counts bars)")
            slot = np.asarray(ts, dtype=np.int64) // timeframe_ms(timeframe)
            if slot.shape != (n,):
                raise ValueError(f"ts must have one entry per score ({n}); got {slot.shape}")
        return np.asarray(slot % self.min_hold == 0)

    def _vol_scale(
        self, close: np.ndarray | None, brk: np.ndarray, n: int, timeframe: str | None
    ) -> np.ndarray:
        """``min(vol_target / realized, max_leverage)`` per row; NaN before a full window."""
        if close is None or timeframe is None:
            raise ValueError("vol_target > 0 needs the closes and the timeframe")
        c = np.asarray(close, dtype=np.float64)
        if c.shape != (n,) or not (np.isfinite(c).all() and (c > 0).all()):
            raise ValueError(f"close must be {n} finite prices > 0")
        w = self.vol_window
        r2 = np.zeros(n)
        valid = np.zeros(n, dtype=bool)
        if n > 1:
            r2[1:] = np.log(c[1:] / c[:-1]) ** 2
            valid[1:] = ~brk[:-1]  # no return across a break
        scale = np.full(n, np.nan)
        if n < w + 1:
            return scale
        # Each window summed on its own: a row's value depends on its window alone (a replay
        # over a later start gives the same bits).
        windows = np.lib.stride_tricks.sliding_window_view(r2, w)  # row k ends at k + w - 1
        full = np.lib.stride_tricks.sliding_window_view(valid, w).all(axis=1)
        realized = np.sqrt(windows.sum(axis=1) / w * bars_per_year(timeframe))
        with np.errstate(divide="ignore"):
            ratio = np.where(realized > 0, self.vol_target / realized, np.inf)
        scale[w - 1 :] = np.where(full, np.minimum(ratio, self.max_leverage), np.nan)
        return scale

    def _replay(
        self, s: np.ndarray, level: np.ndarray, scale: np.ndarray, brk: np.ndarray,
        free: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        edges = self.edges().tolist()
        band, n_levels = self.band, self.levels
        out = np.zeros(len(s))
        k, now = 0, 0.0  # signed level, position
        for i in range(len(s)):
            if not math.isfinite(scale[i]):  # no volatility estimate yet: flat, state reset
                k, now = 0, 0.0
                continue
            q = int(level[i])
            if k == 0 or (q != 0 and (q > 0) != (k > 0)):
                target = q  # enter, stay out, or flip beyond the threshold
            else:
                d = 1 if k > 0 else -1
                along = float(s[i]) * d
                keep = 0
                for j in range(abs(k), 0, -1):  # the highest held level still inside its band
                    if along > edges[j - 1] - band:
                        keep = j
                        break
                target = d * max(keep, abs(q) if q * d > 0 else 0)
            if target != k and free[i]:
                k, now = target, target / n_levels * float(scale[i])
            if brk[i]:
                k, now = 0, 0.0  # closed here; the next row starts flat
                continue
            out[i] = now
        return out
