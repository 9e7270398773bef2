"""The mother brain: the champion report_coordinator of each regime, and how it scores.

Each report_coordinator already combines the best members' out-of-sample scores (a learned
meta-ensemble). The brain keeps, for every regime, the coordinator that scored best out of sample in
that regime, and trades each bar with the champion of the bar's regime (known at the bar's close:
regimes use only past data). It is scored on the rows every champion predicted out of sample, beside
the best single member child and buy-and-hold on the same rows.

Saved as ``ai_models/mother_brain/<version>/``: one weights-only checkpoint per regime
(``<regime>.pt``, a copy of the champion's) and ``training_stats.json``. ``fit_mother_brain`` is
what the Mother calls after its last generation and what ``redline mother train RUN_ID`` calls to
refit it on the run's current champions (each call writes a new version).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.child import read_oos
from agents.dataset import Dataset
from agents.datasets import symbol_group
from market.backtest import DEFAULT_FEE_BPS, backtest
from market.regimes import REGIMES
from store.paths import DataRoot
from store.records.population import AgentRecord, AgentStatus
from store.runs import RunStore

COORDINATOR = "report_coordinator"
SUMMARY_METRICS = ("total_return", "sharpe", "max_drawdown", "hit_rate", "trade_count")


@dataclass(frozen=True)
class BrainResult:
    version: str
    path: Path
    champions: dict[str, str]  # regime -> agent_id
    scores: dict[str, dict[str, float | None]]  # "mother_brain" | "best_child" | "buy_and_hold"
    per_regime: dict[str, dict[str, dict[str, float | None]]]  # regime -> same three -> metrics
    rows: int


def _positions(
    root: DataRoot, agent: AgentRecord, pooled: tuple[Dataset, int] | None = None
) -> pd.Series:
    """``agent``'s out-of-sample positions by timestamp; of a pooled member (its pooled dataset
    and the base symbol's group), those of the base symbol's rows."""
    ts, position = read_oos(root, agent.agent_id, agent.generation, column="position",
                            pooled=pooled)  # fmt: skip
    return pd.Series(position, index=ts)


def _clean(metrics: dict[str, float]) -> dict[str, float | None]:
    return {
        k: (float(v) if math.isfinite(v) else None)
        for k, v in metrics.items()
        if k in SUMMARY_METRICS
    }


def _score(
    frame: pd.DataFrame, positions: np.ndarray, regimes: np.ndarray, fee_bps: float
) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]]]:
    result = backtest(frame, positions, fee_bps=fee_bps)
    per = {name: _clean(values) for name, values in result.metrics_by_regime(regimes).items()}
    return _clean(result.metrics()), per


def fit_mother_brain(
    run_id: str,
    runs: RunStore,
    home: Path,
    base: Dataset,
    *,
    fee_bps: float = DEFAULT_FEE_BPS,
    pools: Sequence[Dataset] = (),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BrainResult:
    root = DataRoot(home)
    run = runs.require_run(run_id)
    last = max(run.generations_done - 1, 0)
    coordinators = [
        a
        for a in runs.agents(run_id, specialty=COORDINATOR, alive_at=last)
        if a.status == AgentStatus.OK
    ]
    if not coordinators:
        raise ValueError(
            f"run {run_id} has no trained report_coordinator alive at generation {last}"
        )
    champions: dict[str, AgentRecord] = {}
    for regime in REGIMES:
        ranked = [
            (sharpe, a.agent_id, a)
            for a in coordinators
            if (sharpe := (a.per_regime.get(regime) or {}).get("sharpe")) is not None
            and math.isfinite(sharpe)
        ]
        if ranked:
            champions[regime] = max(ranked, key=lambda item: (item[0], item[1]))[2]
    if not champions:
        raise ValueError(f"run {run_id}: no report_coordinator has a finite Sharpe in any regime")

    held = {a.agent_id: _positions(root, a) for a in champions.values()}
    common = sorted(set.intersection(*(set(p.index) for p in held.values())))
    if len(common) < 2:
        raise ValueError(
            f"run {run_id}: the champions share {len(common)} scored rows; need 2 or more"
        )
    index = pd.Index(base.ts)
    rows = index.get_indexer(common)
    close = np.asarray(base.close)[rows]
    regimes = (
        np.asarray(base.regimes).astype(str)[rows]
        if base.regimes is not None
        else np.full(len(rows), "")
    )
    frame = pd.DataFrame({"ts": np.asarray(common, dtype=np.int64), "close": close})

    brain = np.zeros(len(common))
    for regime, agent in champions.items():
        mask = regimes == regime
        brain[mask] = held[agent.agent_id].reindex(common).to_numpy()[mask]

    # The best single child: a member trained on the base series, or a pooled member (``pools``:
    # the run's pooled datasets) judged on its positions of the base symbol's rows.
    groups = {pool.digest(): (pool, g) for pool in pools
              if (g := symbol_group(pool, base)) is not None}  # fmt: skip
    members = [
        a for a in runs.agents(run_id, alive_at=last)
        if a.status == AgentStatus.OK and a.specialty != COORDINATOR and a.sharpe is not None
        and (a.dataset_digest == base.digest() or a.dataset_digest in groups)
    ]  # fmt: skip
    scores: dict[str, dict[str, float | None]] = {}
    per_regime: dict[str, dict[str, dict[str, float | None]]] = {r: {} for r in REGIMES}
    contenders: dict[str, np.ndarray] = {
        "mother_brain": brain,
        "buy_and_hold": np.ones(len(common)),
    }
    best_child = max(members, key=lambda a: (a.sharpe or -math.inf, a.agent_id), default=None)
    if best_child is not None:
        child = (
            _positions(root, best_child, groups.get(best_child.dataset_digest or ""))
            .reindex(common)
            .fillna(0.0)
            .to_numpy()
        )
        contenders["best_child"] = child
    for name, positions in contenders.items():
        overall, per = _score(frame, positions, regimes, fee_bps)
        scores[name] = overall
        for regime, values in per.items():
            if regime in per_regime:
                per_regime[regime][name] = values

    version = f"{run_id}-v{now().strftime('%Y%m%dT%H%M%S%f')}"
    folder = root.mother_brain / version
    folder.mkdir(parents=True, exist_ok=True)
    for regime, agent in champions.items():
        if agent.checkpoint_path:
            shutil.copyfile(agent.checkpoint_path, folder / f"{regime}.pt")
    stats: dict[str, Any] = {
        "version": version,
        "run_id": run_id,
        "generation": last,
        "created_at": now().isoformat(),
        "base_dataset": base.name,
        "base_dataset_digest": base.digest(),
        "oos_rows": len(common),
        "oos_from_ts": int(common[0]),
        "oos_to_ts": int(common[-1]),
        "champions": {
            regime: {
                "agent_id": agent.agent_id,
                "generation": agent.generation,
                "genome": json.loads(agent.genome_json),
                "seed": agent.seed,
                "checkpoint": f"{regime}.pt" if agent.checkpoint_path else None,
                "checkpoint_sha256": agent.checkpoint_sha256,
                "oos_metrics_in_regime": {
                    k: (v if math.isfinite(v) else None)
                    for k, v in agent.per_regime.get(regime, {}).items()
                },
            }
            for regime, agent in champions.items()
        },
        "best_child": best_child.agent_id if best_child else None,
        "scores": scores,
        "per_regime": per_regime,
    }
    (folder / "training_stats.json").write_text(json.dumps(stats, indent=2, allow_nan=False))
    return BrainResult(
        version,
        folder,
        {r: a.agent_id for r, a in champions.items()},
        scores,
        per_regime,
        len(common),
    )


def latest_brain(home: Path, run_id: str) -> dict[str, Any] | None:
    """The newest saved brain of ``run_id`` (its training_stats.json), or None."""
    folder = DataRoot(home).mother_brain
    versions = sorted(folder.glob(f"{run_id}-v*/training_stats.json")) if folder.is_dir() else []
    return json.loads(versions[-1].read_text()) if versions else None
