"""Inference grids: one trained model's out-of-sample scores traded many ways, in one 2-D backtest.

An inference config is ``{"threshold": t, "horizon": h, "size": s}`` (``tuning.grids.
inference_configs``). Its positions over the scored rows (:func:`inference_positions`):

- a **signal** fires at row ``i`` when ``|score_i| > t``, in the direction ``sign(score_i)``;
- the position **holds** the latest signal for ``h`` rows: ``position_i = s * sign(score_j)``
  where ``j <= i`` is the latest row with a signal and ``i - j < h``, else flat. A new signal
  replaces the one held (and restarts its ``h`` rows); a row without a signal does not cut a hold
  short. ``h = 1`` and ``s = 1`` is the training scorer's rule (``agents.scoring``);
- ``breaks`` marks rows whose next scored row is not the next bar of the series (as in
  ``agents.training``): the position is closed there and no hold carries over the break.

Row ``i``'s position reads only scores and breaks of rows ``<= i``: no look-ahead. Positions
follow ``market.backtest``'s convention (decided at the close of row ``i``, held to the next
close, the fee charged on every change).

:func:`evaluate_inference_grid` backtests every config at once with
``market.backtest.backtest_many`` over the report's out-of-sample rows only (never a row the model
trained on), and returns per config its metrics (``market.metrics.METRICS``, plus
``direction_hit_rate`` and the ``skew``/``kurtosis`` of its per-bar returns) and the same per
regime (bars grouped by the regime where the position was decided, ``market.metrics.
metrics_by_regime``), where ``skew``/``kurtosis`` (biased sample moments, non-excess kurtosis, as
``market.overfitting`` wants them for the Deflated Sharpe Ratio) are those of the regime's decision
returns. They are left out where undefined (fewer than 3 bars or constant returns). Regimes with
no bar are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from agents.dataset import Dataset
from agents.training import ChildReport, infer_task
from market.backtest import DEFAULT_FEE_BPS, backtest_many, bar_returns, cost_rate

__all__ = ["InferenceResult", "evaluate_inference_grid", "inference_positions", "oos_breaks"]

InferenceResult = tuple[dict[str, float | int], dict[str, float], dict[str, dict[str, float]]]
"""``(inference config, metrics, per-regime metrics)`` of one inference config."""


def _config(config: Mapping[str, Any], index: int) -> tuple[float, int, float]:
    try:
        threshold, horizon, size = config["threshold"], config["horizon"], config["size"]
    except (KeyError, TypeError):
        raise ValueError(
            f"inference config {index} must have threshold, horizon and size; got {config!r}"
        ) from None
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number) or not (
        math.isfinite(float(threshold)) and threshold >= 0
    ):  # fmt: skip
        raise ValueError(f"inference config {index}: threshold must be >= 0; got {threshold!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(
            f"inference config {index}: horizon must be an integer >= 1; got {horizon!r}"
        )
    if isinstance(size, bool) or not isinstance(size, int | float | np.number) or not (
        0.0 < float(size) <= 1.0
    ):  # fmt: skip
        raise ValueError(f"inference config {index}: size must be in (0, 1]; got {size!r}")
    return float(threshold), int(horizon), float(size)


def inference_positions(
    scores: np.ndarray, configs: Sequence[Mapping[str, Any]], *, breaks: np.ndarray | None = None
) -> np.ndarray:
    """Positions (n_configs, n_rows) in [-1, 1] of ``scores`` under each config (module doc)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D; got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite; row {int(np.argmax(~np.isfinite(s)))} is not")
    n = s.size
    cut = np.zeros(n, dtype=bool) if breaks is None else np.asarray(breaks, dtype=bool)
    if cut.shape != (n,):
        raise ValueError(f"breaks must have one flag per score ({n}); got shape {cut.shape}")
    rows = np.arange(n)
    # First row of each row's segment: segments end at a break (inclusive).
    seg_start = np.maximum.accumulate(np.where(np.append(False, cut[:-1]), rows, 0)) if n else rows
    out = np.zeros((len(configs), n))
    parsed = [_config(config, i) for i, config in enumerate(configs)]
    for i, (threshold, horizon, size) in enumerate(parsed):
        signal = np.where(np.abs(s) > threshold, np.sign(s), 0.0)
        last = np.maximum.accumulate(np.where(signal != 0, rows, -1)) if n else rows
        held = (last >= seg_start) & (rows - last < horizon)
        out[i] = np.where(held, signal[np.maximum(last, 0)] * size, 0.0)
        out[i, cut] = 0.0
    return out


def oos_breaks(rows: np.ndarray) -> np.ndarray:
    """Break flags of a single series' scored dataset rows: the next scored row is not the next
    row (the last row never breaks: nothing follows it)."""
    rows = np.asarray(rows, dtype=np.int64)
    return np.append(np.diff(rows) != 1, False) if rows.size else np.zeros(0, dtype=bool)


def _moments(returns: np.ndarray) -> dict[str, float]:
    """Skew and non-excess kurtosis (biased sample moments) when defined."""
    if returns.size < 3 or not np.ptp(returns) > 0:
        return {}
    return {
        "skew": float(stats.skew(returns)),
        "kurtosis": float(stats.kurtosis(returns, fisher=False)),
    }


def _row(values: Mapping[str, np.ndarray], i: int) -> dict[str, float]:
    return {name: float(np.asarray(array)[i]) for name, array in values.items()}


def evaluate_inference_grid(
    report: ChildReport,
    dataset: Dataset,
    configs: Sequence[Mapping[str, Any]],
    *,
    fee_bps: float = DEFAULT_FEE_BPS,
) -> list[InferenceResult]:
    """Every inference config of ``configs`` backtested over the report's out-of-sample rows.

    ``report`` must be an OK report of a single-series (``direction``) model trained on
    ``dataset`` (its digest is checked). Returns one ``(inference, metrics, per_regime)`` per
    config, in order (see the module doc).
    """
    if not report.ok:
        raise ValueError(f"report {report.agent_id} is {report.status.value}: nothing to backtest")
    task = report.task or infer_task(dataset)
    if task != "direction":
        raise ValueError(
            f"inference grids backtest a single series (task 'direction'); "
            f"{report.agent_id} is a {task!r} model"
        )
    if report.dataset_digest and report.dataset_digest != dataset.digest():
        raise ValueError(
            f"report {report.agent_id} was trained on dataset {report.dataset_digest[:12]}, "
            f"not on {dataset.name} ({dataset.digest()[:12]})"
        )
    if dataset.close is None:
        raise ValueError(f"dataset {dataset.name} has no close: nothing to backtest")
    rows = np.asarray(report.oos_rows, dtype=np.int64)
    if rows.size < 2:
        raise ValueError(f"report {report.agent_id} has {rows.size} scored rows; needs 2")
    parsed = [_config(config, i) for i, config in enumerate(configs)]
    breaks = oos_breaks(rows)
    positions = inference_positions(report.oos_score, configs, breaks=breaks)
    close = np.asarray(dataset.close, dtype=np.float64)[rows]
    candles = pd.DataFrame({"ts": np.asarray(dataset.ts)[rows], "close": close})
    grid = backtest_many(
        candles, positions, fee_bps=fee_bps, timeframe=dataset.timeframe or None, bars_axis=1
    )
    # Per-bar and per-decision returns (market.backtest's arithmetic) for the moments.
    r = bar_returns(close)
    held = np.zeros_like(positions)
    held[:, 1:] = positions[:, :-1]
    keep = 1.0 - cost_rate(fee_bps, 0.0) * np.abs(positions - held)
    bar_ret = (1.0 + held * r) * keep - 1.0
    decision = keep.copy()
    decision[:, :-1] *= 1.0 + positions[:, :-1] * r[1:]
    decision -= 1.0
    realized = np.append(r[1:], np.nan)
    realized[breaks] = np.nan  # the next scored row is not the next bar
    metrics = grid.metrics
    per_regime: dict[str, dict[str, np.ndarray]] = {}
    labels = None
    if dataset.regimes is not None:
        labels = np.asarray(dataset.regimes)[rows].astype(str)
        per_regime = grid.metrics_by_regime(labels)
    out: list[InferenceResult] = []
    for i, (threshold, horizon, size) in enumerate(parsed):
        p = positions[i]
        known = (p != 0) & np.isfinite(realized)
        hits = (
            float(np.mean(np.sign(p[known]) == np.sign(realized[known])))
            if known.any()
            else math.nan
        )
        row = _row(metrics, i) | {"direction_hit_rate": hits} | _moments(bar_ret[i])
        regimes: dict[str, dict[str, float]] = {}
        for name, values in per_regime.items():
            assert labels is not None
            mask = labels == name
            if not mask.any():
                continue
            regimes[name] = _row(values, i) | _moments(decision[i, mask])
        inference = {"threshold": threshold, "horizon": horizon, "size": size}
        out.append((inference, row, regimes))
    return out
