"""Train and score one child: walk-forward (time series) or stratified K-fold (tokens), pure torch.

``train_child(dataset, genome, seed=..., agent_id=..., generation=...)`` never raises for a bad
child: an exception, a NaN loss or a NaN score gives ``ChildReport(status=FAILED, reason=...)``.
The same dataset, genome, seed and ``torch_threads`` give the same report, bit for bit (only
``train_seconds`` differs, unless a fake ``clock`` is passed).

Task (``infer_task``): ``classify`` when the dataset has a ``target``, ``rank`` when it has a
``group`` (a panel of symbols), else ``direction``; a ``pooled`` dataset (rows of several symbols,
``group`` naming the symbol) is ``direction``: one model over every symbol's rows, each symbol
traded by its own score (``agents.scoring.score_pooled``).

Inputs. Row ``t`` is seen through its window of ``lookback`` rows ending at ``t`` (the same symbol's
rows for a panel), flattened oldest first. Leading rows with non-finite features (indicator
warm-up) simply have no window; a non-finite value after the first finite row fails the child,
naming the row and the column. Standardization lives in the model (``agents.models``) and uses the
training rows of the fold only.

Labels (direction, rank). ``y_t = clip(fwd_t / (2 sigma), -1, 1)`` with ``fwd_t`` the forward
return over the genome's ``horizon`` (``market.labels.forward_returns``; per symbol for panels) and
``sigma`` its standard deviation over the fold's training rows; the model regresses it through
``tanh`` (MSE). Scores are calibrated afterwards (``ChildNet.out_scale``): ``|score| > 0.3`` means
the prediction is 0.62 of its typical size.

Targets (genes ``label``, ``barrier``, ``primary``; ``market.labels``). ``label: fwd`` (the
default) is the above. ``volscaled``: the forward return over the trailing volatility known at
``t`` (``volscaled_returns``), then the same ``clip(. / (2 sigma), -1, 1)``. ``triple_barrier``:
+1/-1/0 by which barrier (``barrier`` horizon-sized standard deviations up or down, or the time
barrier ``horizon``) the closes reach first (``triple_barrier_labels``), learned as is. Every
target of row ``t`` reads closes up to ``t + horizon`` at most, which ``_Layout.reach`` states; a
training row whose target is undefined (the volatility window filling) is left out.
Meta-labelling (``primary`` other than ``none``): the child learns ``sign_t * target_t`` with
``sign_t`` the primary rule's sign at ``t`` (``market.labels.primary_signal``, causal), i.e.
whether following the rule pays, and its score is ``sign_t * max(s, 0)`` (:func:`meta_scores`):
it takes the rule's side, sized by its confidence, or stays flat. Positions, scoring and serving
read that score as any other.

Families (gene ``family``, ``agents.models``): ``mlp`` and ``tcn`` train as above; ``gbm`` fits a
LightGBM booster to the same target (``agents.gbm``; ``num_threads`` is ``torch_threads``, its
seed the fold's), whose state dict (the model text) is returned like the torch weights.

Split (``default_split``). Walk-forward over rows (over timestamps for a panel or a pooled
dataset) across the whole history: the first 25% of the units only train, the rest is tiled by
4 to 8 equal test folds of about 90 days where the timeframe is known (4 otherwise), expanding
training windows, ``purge = horizon``, ``embargo = lookback``. Training rows are subsampled with
a stride of ``max(1, horizon // 4)`` units (``train_stride``: overlapping labels carry little new
information, and it keeps a pooled child affordable on one core), and a fold trains on at most
``MAX_TRAIN_ROWS`` (20,000) of them, evenly spaced; test rows never are. Every row
whose label reads a bar at or after the fold's first held-out bar is dropped from training,
whatever split is passed, and ``market.splits.check_labels_safe`` asserts it. The test segments
depend only on the data size (and timeframe), so every child of a dataset is scored on the same
rows whatever its horizon and lookback (which is what lets their scores be compared and
stacked). A split's validation segment, if any, is held out and unused (no early stopping).

Scoring (``agents.scoring``). Positions come from the genome's ``agents.positions.PositionRule``
(genes ``threshold``, ``band``, ``min_hold``, ``levels``, ``vol_target``; without them
``sign(score)`` where ``|score| > threshold``, else flat); a panel trades the rule on ``score -
mean score of the timestamp`` per symbol and earns the equal-weight mean; a pooled dataset
trades the rule on each symbol's own score and earns the equal-weight mean too, keeping
``<metric>@<symbol>`` and the independent bets (``n_symbols``, ``n_oos_bars``,
``n_eff_symbols``, ``n_eff_bets``). The OOS rows of
consecutive folds are adjacent bars, so a position carries from one fold into the next; where two scored rows of a series are not adjacent (a split with ``step >
test``) the position is closed at the earlier one. Objectives (all maximized): direction and rank
``(sharpe, max_drawdown, direction_hit_rate)`` (``max_drawdown`` is <= 0, so larger is a smaller loss) (hit rate on the next bar's return, see
``agents.scoring``); classify ``(auc, precision, recall)``. Undefined objectives (no trade) read
0.0 so selection can rank them; ``metrics`` keep NaN where a value is undefined.

Classify. Stratified K-fold (5, seeded) over tokens, BCE on the logit; a token is called positive
when its OOS probability exceeds ``threshold`` (default 0.5); ``oos_score = 2p - 1``. Metrics:
auc, precision, recall, f1, base_rate (never plain accuracy), and the AUC's DeLong standard error
and 95% interval over every token's out-of-fold score (``auc_se``, ``auc_low``, ``auc_high``,
``n_pos``, ``n_neg``: ``agents.scoring.auc_interval``), which the classifier champion rules judge.

The returned state dict is the last fold's model (trained on the most data).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.dataset import Dataset
from agents.gbm import fit_gbm
from agents.genome import Genome
from agents.models import MODEL_TASKS, ChildModel, build_model, family_of
from agents.positions import PositionRule
from agents.scoring import auc_metrics, classify_metrics, score_panel, score_pooled, score_series
from market.backtest import DEFAULT_FEE_BPS
from market.labels import (
    LABELS,
    PRIMARY_RULES,
    forward_returns,
    primary_signal,
    triple_barrier_labels,
    volscaled_returns,
)
from market.splits import Fold, WalkForward, check_labels_safe
from market.timeframes import bars_in

logger = logging.getLogger(__name__)

__all__ = [
    "GENE_DEFAULTS",
    "OBJECTIVES",
    "ChildReport",
    "ChildStatus",
    "FoldPlan",
    "Performance",
    "checkpoint_meta",
    "default_split",
    "infer_task",
    "meta_scores",
    "plan_folds",
    "scores_of_rows",
    "train_child",
    "update_performance",
    "window_inputs",
]

GENE_DEFAULTS: dict[str, Any] = {
    "lookback": 1, "horizon": 1, "lr": 1e-3, "epochs": 5, "weight_decay": 0.0,
    "batch_size": 128, "family": "mlp", "label": "fwd", "barrier": 1.0, "primary": "none",
}  # fmt: skip
"""Training genes a genome may leave out (``threshold`` defaults to 0.0, or 0.5 to classify)."""
OBJECTIVES: dict[str, tuple[str, str, str]] = {
    "direction": ("sharpe", "max_drawdown", "direction_hit_rate"),
    "rank": ("sharpe", "max_drawdown", "direction_hit_rate"),
    "classify": ("auc", "precision", "recall"),
}
K_FOLDS = 5
INITIAL_FRACTION = 0.25
"""Share of a series' units (bars, or timestamps of a panel) that only train (``default_split``)."""
MIN_FOLDS, MAX_FOLDS, TEST_SPAN = 4, 8, "90d"
"""Walk-forward test folds: at least 4, at most 8, about 90 days each where that fits."""
_NAN3 = (math.nan, math.nan, math.nan)


class ChildStatus(Enum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True, eq=False)
class ChildReport:
    """What a child returns to the Mother (see the module doc for objectives and metrics).

    ``oos_rows`` (dataset rows), ``oos_ts``, ``oos_score`` and ``oos_position`` are aligned, one
    entry per scored row; ``folds`` is the walk-forward plan (empty for K-fold); ``n_train_rows``
    counts the rows the returned model trained on. A FAILED report has NaN objectives.
    """

    agent_id: str
    specialty: str
    generation: int
    status: ChildStatus
    reason: str
    objectives: tuple[float, float, float]
    metrics: dict[str, float]
    per_regime: dict[str, dict[str, float]]
    oos_ts: np.ndarray
    oos_score: np.ndarray
    train_seconds: float
    n_train_rows: int
    n_test_rows: int
    dataset_digest: str
    genome: Genome
    seed: int
    task: str = ""
    oos_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    oos_position: np.ndarray = field(default_factory=lambda: np.zeros(0))
    folds: tuple[Fold, ...] = ()
    symbols: tuple[str, ...] = ()  # a pooled dataset's symbols (its group_names), else ()

    @property
    def ok(self) -> bool:
        return self.status is ChildStatus.OK

    @classmethod
    def failed(
        cls, *, agent_id: str, generation: int, genome: Genome, seed: int, reason: str,
        dataset_digest: str = "", train_seconds: float = 0.0, task: str = "",
    ) -> ChildReport:  # fmt: skip
        """A FAILED report (also for the actor shell: timeouts, killed processes)."""
        empty = np.zeros(0)
        return cls(
            agent_id, genome.specialty, generation, ChildStatus.FAILED, reason, _NAN3, {}, {},
            np.zeros(0, dtype=np.int64), empty, train_seconds, 0, 0, dataset_digest, genome,
            seed, task,
        )  # fmt: skip


@dataclass(frozen=True)
class Performance:
    """A child's live record from the trades bots report back (``update_performance``)."""

    trades: int = 0
    correct: int = 0
    cumulative_profit: float = 0.0

    @property
    def hit_rate(self) -> float:
        """Share of reported trades that were correct; 0.0 before the first one."""
        return self.correct / self.trades if self.trades else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {"trades": self.trades, "correct": self.correct, "hit_rate": self.hit_rate,
                "cumulative_profit": self.cumulative_profit}  # fmt: skip


def update_performance(
    perf: Performance, was_correct: bool, profit_contribution: float
) -> Performance:
    """The record after one more trade (a new frozen value; ``perf`` is unchanged)."""
    if not isinstance(was_correct, bool | np.bool_):
        raise ValueError(f"was_correct must be a bool; got {was_correct!r}")
    if isinstance(profit_contribution, bool) or not (
        isinstance(profit_contribution, int | float) and math.isfinite(profit_contribution)
    ):
        raise ValueError(
            f"profit_contribution must be a finite number; got {profit_contribution!r}"
        )
    return Performance(perf.trades + 1, perf.correct + int(bool(was_correct)),
                       perf.cumulative_profit + float(profit_contribution))  # fmt: skip


# --- genes and inputs --------------------------------------------------------------------------


class _Diverged(ValueError):
    """Training produced a non-finite loss, weight or score."""


def infer_task(dataset: Dataset) -> str:
    """``classify`` with a ``target``, ``rank`` for a panel (``group``, not ``pooled``), else
    ``direction`` (a single series, or a pooled dataset: each symbol traded by its own score)."""
    if dataset.target is not None:
        return "classify"
    return "rank" if dataset.group is not None and not dataset.pooled else "direction"


def _int_gene(genome: Genome, name: str, low: int) -> int:
    value = genome.as_dict().get(name, GENE_DEFAULTS[name])
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"gene {name} must be an integer >= {low}; got {value!r}")
    return int(value)


def _float_gene(genome: Genome, name: str, default: float, *, positive: bool = False) -> float:
    value = genome.as_dict().get(name, default)
    number = (
        float(value)
        if isinstance(value, int | float | np.number) and not isinstance(value, bool)
        else math.nan
    )
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        rule = "> 0" if positive else ">= 0"
        raise ValueError(f"gene {name} must be a finite number {rule}; got {value!r}")
    return number


def _columns(dataset: Dataset, genome: Genome) -> tuple[int, ...]:
    name = genome.as_dict().get("feature_set")
    if name is None or (name == "all" and "all" not in dataset.feature_sets):
        return dataset.feature_sets.get("all", tuple(range(dataset.features.shape[1])))
    if name not in dataset.feature_sets:
        raise ValueError(
            f"gene feature_set must be one of {sorted(dataset.feature_sets)}; got {name!r}"
        )
    return tuple(dataset.feature_sets[str(name)])


@dataclass(frozen=True)
class _Layout:
    """Row geometry: split unit, window rows and labels of every dataset row."""

    unit: np.ndarray  # int64: position on the split's axis (row, or timestamp index for panels)
    n_units: int
    hist: np.ndarray  # int64 (n_rows, lookback): window rows oldest first; -1 row = no window
    prev: np.ndarray  # int64: the previous row of the same series (-1 for its first row)
    label: np.ndarray  # float64 forward return over the horizon (NaN when unlabeled)
    # int64 unit of the last bar the label reads (n_units when unlabeled): row t + horizon, for
    # every label gene (fwd, volscaled and triple_barrier read closes up to t + horizon at most).
    reach: np.ndarray


def _layout(dataset: Dataset, columns: tuple[int, ...], lookback: int, horizon: int) -> _Layout:
    n = dataset.n_rows
    if dataset.close is None:
        raise ValueError(f"dataset {dataset.name} has no close: direction and rank need prices")
    close = np.asarray(dataset.close, dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(close) & (close > 0)))
    if bad.size:
        raise ValueError(f"close must be finite and > 0: row {bad[0]} close={close[bad[0]]!r}")
    if dataset.group is None:
        unit, n_units = np.arange(n, dtype=np.int64), n
        groups = [np.arange(n, dtype=np.int64)]
    else:
        uniq, inverse = np.unique(dataset.ts, return_inverse=True)
        unit, n_units = inverse.astype(np.int64), len(uniq)
        group = np.asarray(dataset.group)
        groups = [np.flatnonzero(group == g) for g in np.unique(group)]
    finite = np.isfinite(dataset.features[:, list(columns)])
    hist = np.full((n, lookback), -1, dtype=np.int64)
    prev = np.full(n, -1, dtype=np.int64)
    label = np.full(n, np.nan)
    reach = np.full(n, n_units, dtype=np.int64)
    for rows in groups:
        if np.any(np.diff(dataset.ts[rows]) <= 0):
            raise ValueError(f"dataset {dataset.name}: ts must increase within each series")
        ok = finite[rows].all(axis=1)
        first = int(np.argmax(ok)) if ok.any() else len(rows)
        late = np.flatnonzero(~ok[first:])
        if late.size:
            row = int(rows[first + late[0]])
            col = columns[int(np.argmin(finite[row]))]
            raise ValueError(
                f"features must be finite after the warm-up: row {row} column "
                f"{dataset.feature_names[col]!r} is {float(dataset.features[row, col])!r}"
            )
        live = rows[first:]
        if len(live) >= lookback:
            hist[live[lookback - 1 :]] = np.lib.stride_tricks.sliding_window_view(live, lookback)
        prev[rows[1:]] = rows[:-1]
        label[rows] = forward_returns(close[rows], horizon)
        reach[rows[:-horizon]] = unit[rows[horizon:]]
    return _Layout(unit, n_units, hist, prev, label, reach)


def window_inputs(dataset: Dataset, genome: Genome, rows: np.ndarray) -> np.ndarray:
    """Flattened windows (len(rows), lookback * n_features) float32 of ``rows``: a model's input.

    Every row must have a full window of finite features (see the module doc).
    """
    columns = _columns(dataset, genome)
    if infer_task(dataset) == "classify":
        return np.ascontiguousarray(dataset.features[np.asarray(rows)][:, list(columns)])
    lookback = _int_gene(genome, "lookback", 1)
    hist = _series_history(dataset, columns, lookback)
    if hist is None:  # a panel, or data _layout refuses (it names the row and the column)
        hist = _layout(dataset, columns, lookback, 1).hist
    return _windows(dataset, columns, hist, np.asarray(rows))


def _series_history(dataset: Dataset, columns: tuple[int, ...], lookback: int) -> np.ndarray | None:
    """``_layout(...).hist`` of a single series, without the labels (what serving asks for on
    every request), or None when ``_layout`` must look: a panel, a bad close or timestamp, or a
    non-finite feature after the warm-up."""
    close = dataset.close
    if dataset.group is not None or close is None or dataset.n_rows == 0:
        return None
    if not (np.isfinite(close).all() and (close > 0).all() and (np.diff(dataset.ts) > 0).all()):
        return None
    finite = np.isfinite(dataset.features[:, list(columns)]).all(axis=1)
    first = int(np.argmax(finite)) if finite.any() else dataset.n_rows
    if not finite[first:].all():
        return None
    row = np.arange(dataset.n_rows, dtype=np.int64)
    hist = row[:, None] + np.arange(1 - lookback, 1, dtype=np.int64)  # oldest first
    hist[row < first + lookback - 1] = -1
    return hist


def _windows(
    dataset: Dataset, columns: tuple[int, ...], hist: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    index = hist[rows]
    if index.size and int(index.min()) < 0:
        raise ValueError(f"row {int(rows[np.argmax((index < 0).any(axis=1))])} has no full window")
    x = dataset.features[index[..., None], np.asarray(columns)]  # (rows, lookback, features)
    return np.ascontiguousarray(x.reshape(len(rows), -1), dtype=np.float32)


# --- folds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldPlan:
    """The dataset rows one fold trains on and scores (``fold`` is None for K-fold)."""

    fold: Fold | None
    train_rows: np.ndarray
    test_rows: np.ndarray


def default_split(
    n_units: int, *, horizon: int, lookback: int, timeframe: str | None = None
) -> WalkForward:
    """Expanding folds whose test segments tile everything after the first quarter (module doc).

    The first ``INITIAL_FRACTION`` of the units only trains; the rest is cut into
    ``MIN_FOLDS``..``MAX_FOLDS`` equal test folds, about ``TEST_SPAN`` long when ``timeframe``
    is known (``MIN_FOLDS`` folds otherwise); the remainder of that division (fewer than a fold's
    units) joins the initial window, so the last unit is always tested. The test segments
    depend only on ``n_units`` and ``timeframe``, never on the genes.
    """
    initial = int(n_units * INITIAL_FRACTION)
    rest = n_units - initial
    span = _span_units(timeframe)
    folds = MIN_FOLDS if span is None else min(MAX_FOLDS, max(MIN_FOLDS, rest // span))
    test = rest // folds
    train = n_units - folds * test - horizon - lookback
    if test < 1 or train < 1:
        raise ValueError(
            f"dataset has {n_units} rows: too few for {folds} test folds after the first "
            f"{INITIAL_FRACTION:.0%} with purge {horizon} and embargo {lookback}"
        )
    return WalkForward(train=train, test=test, mode="expanding", purge=horizon, embargo=lookback)


def _span_units(timeframe: str | None) -> int | None:
    if not timeframe:
        return None
    try:
        return max(1, bars_in(TEST_SPAN, timeframe))
    except ValueError:
        return None


def train_stride(horizon: int) -> int:
    """Every ``train_stride``-th unit of a fold's training rows is trained on: labels over
    ``horizon`` bars overlap, so neighbours carry little new information (and a pooled child
    trains on every symbol's rows, which must stay affordable on one core)."""
    return max(1, horizon // 4)


#: At most this many training rows per fold, evenly spaced over the fold's training window (the
#: newest always kept): a pooled five-symbol 1h child's late folds would otherwise train on ~90k
#: rows, and its largest genomes for minutes on one core. Scoring is never capped.
MAX_TRAIN_ROWS = 20_000


def _cap(rows: np.ndarray, cap: int = MAX_TRAIN_ROWS) -> np.ndarray:
    """``rows`` thinned to ``cap`` evenly spaced ones (the last kept) when there are more."""
    if len(rows) <= cap:
        return rows
    return rows[np.linspace(0, len(rows) - 1, cap).round().astype(np.int64)]


def _walk_forward_plan(layout: _Layout, split: WalkForward, stride: int = 1) -> list[FoldPlan]:
    plans = []
    valid = layout.hist[:, 0] >= 0
    strided = layout.unit % stride == 0
    for fold in split.split(layout.n_units):
        first_held = fold.held_out()[0].start
        in_train = (layout.unit >= fold.train.start) & (layout.unit < fold.train.stop)
        labeled = np.isfinite(layout.label) & (layout.reach < first_held)
        train_rows = _cap(np.flatnonzero(in_train & valid & labeled & strided))
        in_test = (layout.unit >= fold.test.start) & (layout.unit < fold.test.stop)
        test_rows = np.flatnonzero(in_test & valid)
        if len(train_rows) < 2 or len(test_rows) == 0:
            raise ValueError(
                f"fold {fold.index}: {len(train_rows)} trainable rows and {len(test_rows)} test "
                f"rows; the dataset is too short for this lookback and horizon"
            )
        units = layout.unit[train_rows]
        check_labels_safe(fold, int(np.max(layout.reach[train_rows] - units)), train_rows=units)
        plans.append(FoldPlan(fold, train_rows, test_rows))
    return plans


def _kfold_plan(target: np.ndarray, seed: int) -> list[FoldPlan]:
    """Stratified K-fold: each class shuffled (seeded) and dealt round-robin to the folds."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    fold_of = np.empty(len(target), dtype=np.int64)
    for value in np.unique(target):
        members = np.flatnonzero(target == value)
        if len(members) < K_FOLDS:
            raise ValueError(f"target class {value!r} has {len(members)} rows; needs {K_FOLDS}")
        fold_of[rng.permutation(members)] = np.arange(len(members)) % K_FOLDS
    return [FoldPlan(None, np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k))
            for k in range(K_FOLDS)]  # fmt: skip


def plan_folds(
    dataset: Dataset, genome: Genome, split: WalkForward | None = None, *, seed: int = 0
) -> list[FoldPlan]:
    """The rows each fold trains on and scores, exactly as ``train_child`` uses them.

    ``seed`` only matters for K-fold (classify); ``split`` only for walk-forward.
    """
    if infer_task(dataset) == "classify":
        return _kfold_plan(_binary_target(dataset), seed)
    return _plan(dataset, genome, split)[1]


def _plan(
    dataset: Dataset, genome: Genome, split: WalkForward | None
) -> tuple[_Layout, list[FoldPlan]]:
    lookback, horizon = _int_gene(genome, "lookback", 1), _int_gene(genome, "horizon", 1)
    layout = _layout(dataset, _columns(dataset, genome), lookback, horizon)
    split = split or default_split(
        layout.n_units, horizon=horizon, lookback=lookback, timeframe=dataset.timeframe or None
    )
    return layout, _walk_forward_plan(layout, split, train_stride(horizon))


def _binary_target(dataset: Dataset) -> np.ndarray:
    target = np.asarray(dataset.target, dtype=np.float64)
    if not np.isin(target, (0.0, 1.0)).all():
        raise ValueError(f"dataset {dataset.name}: target must be 0/1; got {np.unique(target)[:5]}")
    return target


# --- fitting -----------------------------------------------------------------------------------


def _choice_gene(genome: Genome, name: str, choices: tuple[str, ...]) -> str:
    value = genome.as_dict().get(name, GENE_DEFAULTS[name])
    if value not in choices:
        raise ValueError(f"gene {name} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def _series_rows(dataset: Dataset) -> list[np.ndarray]:
    """The rows of each series of the dataset (one for a single series), in time order."""
    if dataset.group is None:
        return [np.arange(dataset.n_rows, dtype=np.int64)]
    group = np.asarray(dataset.group)
    return [np.flatnonzero(group == g) for g in np.unique(group)]


def _targets(
    dataset: Dataset, genome: Genome, layout: _Layout
) -> tuple[np.ndarray, np.ndarray | None]:
    """The target of every row under the genes ``label``, ``barrier`` and ``primary`` (NaN where
    undefined), and the primary rule's sign per row (None without one); see the module doc."""
    label = _choice_gene(genome, "label", LABELS)
    primary = _choice_gene(genome, "primary", PRIMARY_RULES)
    barrier = _float_gene(genome, "barrier", GENE_DEFAULTS["barrier"], positive=True)
    if label == "fwd" and primary == "none":
        return layout.label, None
    horizon = _int_gene(genome, "horizon", 1)
    assert dataset.close is not None  # _layout checked it
    close = np.asarray(dataset.close, dtype=np.float64)
    target = np.full(dataset.n_rows, np.nan)
    sign = None if primary == "none" else np.zeros(dataset.n_rows)
    for rows in _series_rows(dataset):
        if label == "fwd":
            target[rows] = layout.label[rows]
        elif label == "volscaled":
            target[rows] = volscaled_returns(close[rows], horizon)
        else:
            target[rows] = triple_barrier_labels(close[rows], horizon, barrier)
        if sign is not None:
            sign[rows] = primary_signal(close[rows], primary)
    return (target if sign is None else sign * target), sign


def _learned(target: np.ndarray, genome: Genome) -> np.ndarray:
    """What the model regresses: ``clip(target / (2 sigma), -1, 1)`` over the training rows'
    ``sigma``, or a triple-barrier target as is (already -1/0/+1)."""
    if _choice_gene(genome, "label", LABELS) == "triple_barrier":
        return target.astype(np.float64, copy=True)
    sigma = float(np.std(target))
    return np.clip(target / (2.0 * sigma), -1.0, 1.0) if sigma > 0 else np.zeros_like(target)


def _take_primary(score: np.ndarray, sign: np.ndarray) -> np.ndarray:
    return sign * np.clip(score, 0.0, 1.0)


def scores_of_rows(
    dataset: Dataset, genome: Genome, rows: np.ndarray, score: np.ndarray
) -> np.ndarray:
    """The model's scores ``score`` of dataset ``rows`` as the child trades them (with a
    ``primary`` gene, its rule's side; see :func:`meta_scores`): how training turns a model's
    out-of-sample output into the stored scores, for anyone scoring a checkpoint again."""
    primary = _choice_gene(genome, "primary", PRIMARY_RULES)
    if primary == "none" or infer_task(dataset) == "classify" or dataset.close is None:
        return score
    close = np.asarray(dataset.close, dtype=np.float64)
    sign = np.zeros(dataset.n_rows)
    for series in _series_rows(dataset):
        sign[series] = primary_signal(close[series], primary)
    return _take_primary(np.asarray(score, dtype=np.float64), sign[np.asarray(rows)])


def meta_scores(genome: Genome, close: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The scores of the last ``len(score)`` bars of the series whose closes (oldest first, up to
    the last scored bar) are ``close``, as the child under ``genome`` trades them: the model's
    scores themselves, or with a ``primary`` gene ``sign_t * max(s, 0)`` (module doc). What
    training applies to its out-of-sample scores and serving to its live ones."""
    score = np.asarray(score)
    primary = _choice_gene(genome, "primary", PRIMARY_RULES)
    if primary == "none" or score.size == 0:
        return score
    close = np.asarray(close, dtype=np.float64)
    if close.size < score.size:
        raise ValueError(f"close has {close.size} bars; needs the {score.size} scored ones")
    sign = primary_signal(close, primary)[-score.size :]
    return _take_primary(score.astype(np.float64), sign).astype(score.dtype, copy=False)


def _fit(
    x: np.ndarray, y: np.ndarray, genome: Genome, task: str, seq: np.random.SeedSequence, k: int
) -> tuple[ChildModel, float]:
    """A fresh model trained on ``(x, y)``; returns it in eval mode with its last epoch's loss."""
    if family_of(genome) == "gbm":
        return fit_gbm(x, y, genome, task, int(seq.generate_state(1)[0]), torch.get_num_threads())
    torch.manual_seed(int(seq.generate_state(1)[0]))
    rng = np.random.default_rng(seq)
    lr = _float_gene(genome, "lr", GENE_DEFAULTS["lr"], positive=True)
    decay = _float_gene(genome, "weight_decay", GENE_DEFAULTS["weight_decay"])
    epochs, batch = _int_gene(genome, "epochs", 1), _int_gene(genome, "batch_size", 1)
    model = build_model(genome, x.shape[1], task)
    model.set_standardization(torch.from_numpy(x.mean(axis=0, dtype=np.float64).astype(np.float32)),
                              torch.from_numpy(x.std(axis=0, dtype=np.float64).astype(np.float32)))  # fmt: skip
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=decay, foreach=True)
    loss_fn: nn.Module = nn.BCEWithLogitsLoss() if task == "classify" else nn.MSELoss()
    model.train()
    epoch_loss = math.nan
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        xs, ys = xt[order], yt[order]  # one gather per epoch; batches are then views
        total = 0.0
        for b, start in enumerate(range(0, len(x), batch)):
            xb, yb = xs[start : start + batch], ys[start : start + batch]
            loss = loss_fn(model(xb), yb)
            value = float(loss.item())
            if not math.isfinite(value):
                raise _Diverged(
                    f"loss is {value} at fold {k}, epoch {epoch}, batch {b} (lr={lr:g})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += value * len(yb)
        epoch_loss = total / len(x)
    model.eval()
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise _Diverged(f"weights became non-finite at fold {k} (lr={lr:g})")
    if task != "classify":
        with torch.no_grad():
            rms = float(torch.sqrt(torch.mean(model.head(xt).double() ** 2)))
        if not math.isfinite(rms):
            raise _Diverged(f"predictions are non-finite at fold {k} (lr={lr:g})")
        model.out_scale.fill_(1.0 / rms if rms > 0 else 1.0)
    return model, epoch_loss


def _predict(model: ChildModel, x: np.ndarray, k: int) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.from_numpy(x)).double().numpy()
    if model.task == "classify":
        out = np.tanh(out / 2.0)  # 2 * sigmoid(logit) - 1
    bad = int((~np.isfinite(out)).sum())
    if bad:
        raise _Diverged(f"fold {k} produced {bad} non-finite scores")
    return out


# --- the entry point ---------------------------------------------------------------------------


def _zero_nan(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _check_seed(seed: int, torch_threads: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    if isinstance(torch_threads, bool) or not isinstance(torch_threads, int) or torch_threads < 1:
        raise ValueError(f"torch_threads must be an integer >= 1; got {torch_threads!r}")


def train_child(
    dataset: Dataset,
    genome: Genome,
    *,
    seed: int,
    agent_id: str,
    generation: int,
    split: WalkForward | None = None,
    torch_threads: int = 1,
    fee_bps: float = DEFAULT_FEE_BPS,
    task: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[ChildReport, dict[str, torch.Tensor] | None]:
    """Train a child per fold, score it out of sample; ``(report, last fold's state dict)``.

    ``task`` overrides ``infer_task(dataset)``; ``split`` defaults to ``default_split`` (K-fold
    ignores it). A bad child gives a FAILED report and ``None`` (never an exception for anything
    the child's genome or data cause; only a bad ``seed`` or ``torch_threads`` raises).
    ``torch.set_num_threads(torch_threads)`` and ``torch.manual_seed`` act on the process: one
    child trains at a time per process (an actor).
    """
    _check_seed(seed, torch_threads)
    started = clock()
    digest = dataset.digest()
    kind = task or infer_task(dataset)
    base = ChildReport.failed(agent_id=agent_id, generation=generation, genome=genome, seed=seed,
                              reason="", dataset_digest=digest, task=kind)  # fmt: skip
    torch.set_num_threads(torch_threads)
    try:
        if kind not in MODEL_TASKS:
            raise ValueError(f"task must be one of {', '.join(MODEL_TASKS)}; got {kind!r}")
        report, state = _train(dataset, genome, seed, kind, split, fee_bps, base)
    except Exception as exc:  # a bad child is a result, never a crashed generation
        reason = (
            f"diverged: {exc}" if isinstance(exc, _Diverged) else f"{type(exc).__name__}: {exc}"
        )
        logger.info("child %s (%s) FAILED: %s", agent_id, genome.specialty, reason)
        return replace(base, reason=reason, train_seconds=clock() - started), None
    report = replace(report, train_seconds=clock() - started)
    logger.info("child %s (%s) trained in %.2fs: objectives %s", agent_id, genome.specialty,
                report.train_seconds, report.objectives)  # fmt: skip
    return report, state


def _train(
    dataset: Dataset, genome: Genome, seed: int, task: str, split: WalkForward | None,
    fee_bps: float, base: ChildReport,
) -> tuple[ChildReport, dict[str, torch.Tensor]]:  # fmt: skip
    columns = _columns(dataset, genome)
    layout: _Layout | None = None
    if task == "classify":
        target = _binary_target(dataset)
        plans = _kfold_plan(target, seed)
        bad = np.argwhere(~np.isfinite(dataset.features[:, list(columns)]))
        if bad.size:
            row, col = (int(v) for v in bad[0])
            raise ValueError(f"features must be finite: row {row} column "
                             f"{dataset.feature_names[columns[col]]!r} is not")  # fmt: skip
        threshold = _float_gene(genome, "threshold", 0.5)
    else:
        layout, plans = _plan(dataset, genome, split)
        rule = PositionRule.from_genome(genome, default_threshold=0.0)
    seqs = np.random.SeedSequence(seed).spawn(len(plans) + 1)[1:]  # [0] is K-fold's shuffle
    scores, losses = [], []
    model: ChildModel | None = None
    learn, sign = (None, None) if layout is None else _targets(dataset, genome, layout)
    n_fit = 0
    for k, (plan, seq) in enumerate(zip(plans, seqs, strict=True)):
        if layout is None:
            x_train = np.ascontiguousarray(dataset.features[plan.train_rows][:, list(columns)])
            x_test = np.ascontiguousarray(dataset.features[plan.test_rows][:, list(columns)])
            y = target[plan.train_rows]
            n_fit = len(plan.train_rows)
        else:
            assert learn is not None
            fit_rows = plan.train_rows[np.isfinite(learn[plan.train_rows])]
            if len(fit_rows) < 2:
                raise ValueError(f"fold {k}: {len(fit_rows)} training rows have a defined target")
            x_train = _windows(dataset, columns, layout.hist, fit_rows)
            x_test = _windows(dataset, columns, layout.hist, plan.test_rows)
            y = _learned(learn[fit_rows], genome)
            n_fit = len(fit_rows)
        model, loss = _fit(x_train.astype(np.float32, copy=False), y, genome, task, seq, k)
        fold_scores = _predict(model, x_test.astype(np.float32, copy=False), k)
        if sign is not None:
            fold_scores = _take_primary(fold_scores, sign[plan.test_rows])
        scores.append(fold_scores)
        losses.append(loss)
    assert model is not None
    rows = np.concatenate([p.test_rows for p in plans])
    score = np.concatenate(scores)
    order = np.argsort(rows, kind="stable")  # K-fold rows come back in dataset order
    rows, score = rows[order], score[order]
    if layout is None:
        prob = (score + 1.0) / 2.0
        metrics = classify_metrics(target[rows], prob, threshold)
        metrics |= auc_metrics(target[rows], prob)  # DeLong's interval: the classifier rules'
        position = (prob > threshold).astype(np.float64)
        per_regime: dict[str, dict[str, float]] = {}
        objectives = (_zero_nan(metrics["auc"]), _zero_nan(metrics["precision"]),
                      _zero_nan(metrics["recall"]))  # fmt: skip
    else:
        assert dataset.close is not None
        close = np.asarray(dataset.close, dtype=np.float64)
        regimes = None if dataset.regimes is None else np.asarray(dataset.regimes)[rows]
        # Close a position where the next scored row is not the next bar of its series.
        breaks = np.append(layout.prev[rows[1:]] != rows[:-1], False)
        if dataset.group is not None:
            group = np.asarray(dataset.group)[rows]
            # Within a symbol, the next scored row is found per group, not in row order.
            breaks = np.zeros(len(rows), dtype=bool)
            for g in np.unique(group):
                sel = np.flatnonzero(group == g)
                breaks[sel[:-1]] = layout.prev[rows[sel[1:]]] != rows[sel[:-1]]
        if task == "rank":
            assert dataset.group is not None
            scored = score_panel(
                dataset.ts[rows], close[rows], group, score, rule, breaks=breaks,
                regimes=regimes, timeframe=dataset.timeframe, fee_bps=fee_bps,
            )  # fmt: skip
        elif dataset.group is not None:  # pooled: each symbol by its own score
            scored = score_pooled(
                dataset.ts[rows], close[rows], group, score, rule,
                names=dataset.group_names, breaks=breaks, labels=layout.label[rows],
                regimes=regimes, timeframe=dataset.timeframe, fee_bps=fee_bps,
            )  # fmt: skip
        else:
            scored = score_series(
                dataset.ts[rows], close[rows], score, rule, breaks=breaks,
                labels=layout.label[rows], regimes=regimes, timeframe=dataset.timeframe or None,
                fee_bps=fee_bps,
            )  # fmt: skip
        position, metrics, per_regime = scored.position, scored.metrics, scored.per_regime
        ic = np.isfinite(layout.label[rows])
        metrics["ic"] = float(np.corrcoef(score[ic], layout.label[rows][ic])[0, 1]) if (
            ic.sum() > 2 and np.std(score[ic]) > 0) else math.nan  # fmt: skip
        objectives = (_zero_nan(metrics["sharpe"]), _zero_nan(metrics["max_drawdown"]),
                      _zero_nan(metrics["direction_hit_rate"]))  # fmt: skip
    metrics |= {"n_folds": float(len(plans)), "train_loss": float(losses[-1])}
    report = replace(
        base, status=ChildStatus.OK, objectives=objectives, metrics=metrics,
        per_regime=per_regime, oos_ts=np.asarray(dataset.ts)[rows], oos_score=score,
        n_train_rows=n_fit, n_test_rows=len(rows), oos_rows=rows,
        oos_position=position, folds=tuple(p.fold for p in plans if p.fold is not None),
        symbols=tuple(dataset.group_names) if dataset.pooled else (),
    )  # fmt: skip
    state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    return report, state


def checkpoint_meta(report: ChildReport) -> dict[str, Any]:
    """JSON-ready metadata for ``agents.models.save_checkpoint`` (``load_model`` reads it back)."""
    return {
        "agent_id": report.agent_id, "specialty": report.specialty,
        "generation": report.generation, "seed": report.seed, "task": report.task,
        "genome": report.genome.to_json(), "dataset_digest": report.dataset_digest,
        "objectives": list(report.objectives), "status": report.status.value,
    } | ({"symbols": list(report.symbols)} if report.symbols else {})  # fmt: skip
