"""The edge benchmark: evolve under the default champion rules, then trade a year no one tuned on.

Run from the repo root with the venv's python:  .venv/bin/python benchmarks/edge.py [--quick]

1. **Data.** The five Binance 1h series of ../shared/data (BTC, ETH, SOL, XRP, BNB/USDT, to
   2024-03-31) are imported into a fresh store under a temporary data root (``--home`` keeps one).
2. **Final test.** The last 12 months, 2023-04-01 to 2024-03-31 (``FINAL_TEST_START`` ..
   ``FINAL_TEST_END``), are held out: the evolution's data ends at 2023-04-01
   (``configs/evolve-edge.yaml``), and the benchmark checks that no dataset any child trained or
   was scored on has a bar at or after it. 20% of the rug-pull tokens (stratified, seeded) are
   held out the same way: the rug-pull detector trains on a file without them.
3. **Evolution** of ``configs/evolve-edge.yaml`` on Ray, judged by the project's **default**
   champion rules (``configs/defaults.yaml``: DSR 0.95 over every trial, margin 0.25, 200 bars;
   classifiers: AUC lower bound 0.85). ``--quick``: 2 generations and a smaller population (the
   same rules; the benchmark says so).
4. **Replay.** The champions are loaded as Serve loads them (``serving.ensemble.Ensemble.load``)
   and every hourly bar of the final test is sent to ``Ensemble.predict`` (the code path behind
   ``/v1/predict``) with the ``HISTORY`` candles before it, one bar at a time, as a bot would. The
   served position (``signal.direction * position_size``) decided at bar t's close is held to the
   next close and backtested with ``market.backtest`` at 10 bps per unit of position change.
5. **Baselines**, on the same bars and costs: buy-and-hold; volatility-targeted buy-and-hold
   (position = min(1, target / realized volatility over the previous 30 days), the target being
   the symbol's median 30-day volatility over the training years); and the long-only SMA
   crossover whose (fast, slow) pair had the best net Sharpe on the training years.
6. **Rug pulls.** Each held-out token's raw features go to ``Ensemble.rugpull`` (``/v1/rugpull``);
   the AUC of the served probabilities, or ``none`` when no rug-pull champion was crowned.

The last line: ``RESULT symbols_beating_bh=N symbols_beating_sma=N champions=N rugpull_auc=X``
(a symbol counts when the served ensemble's final-test Sharpe exceeds the baseline's). When the
gate crowns nothing that votes, the ensemble stays flat (Sharpe 0) and the benchmark says so: an
honest result.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.scoring import roc_auc  # noqa: E402
from market.baselines import sma_cross  # noqa: E402
from market.equity import choose_sma, equity_stats  # noqa: E402
from market.when import parse_when  # noqa: E402

SHARED = Path(os.environ.get("REDLINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "BNB/USDT")
FINAL_TEST_START = "2023-04-01"
FINAL_TEST_END = "2024-04-01"
FEE_BPS = 10.0
HISTORY = 1000  # candles sent with each request: every feature window, the regime window and the
# longest position-rule replay (a volatility-targeting member needs about 800)
VOL_WINDOW = 720  # bars of realized volatility for the vol-targeted buy-and-hold
TOKEN_HOLDOUT = 0.2
TOKEN_SEED = 20230401
QUICK = {"generations": 2, "population": {
    "technical_analyst": 4, "volume_hunter": 4, "market_scanner": 3, "whale_watcher": 2,
    "sentiment_scout": 3, "rugpull_detector": 3, "report_coordinator": 2,
}}  # fmt: skip


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- data -----------------------------------------------------------------------------------------


def import_series(store: Any) -> None:
    from store.ingest import import_file

    for symbol in SYMBOLS:
        path = SHARED / f"binance_{symbol.replace('/', '-')}_1h.csv.gz"
        result = import_file(store, path)
        log(f"imported {path.name}: {result.rows_inserted:,} rows")


def split_tokens(home: Path) -> tuple[Path, pd.DataFrame]:
    """The rug-pull tokens minus a stratified, seeded 20%: (training file, held-out rows)."""
    tokens = pd.read_csv(SHARED / "rugpull_uniswapv2_tokens.csv.gz")
    rng = np.random.default_rng(TOKEN_SEED)
    held = np.zeros(len(tokens), dtype=bool)
    for value in (0, 1):
        members = np.flatnonzero(tokens["is_rugpull"].to_numpy() == value)
        chosen = rng.choice(members, size=round(len(members) * TOKEN_HOLDOUT), replace=False)
        held[chosen] = True
    train_file = home / "rugpull_tokens_train.csv.gz"
    tokens[~held].to_csv(train_file, index=False)
    return train_file, tokens[held].reset_index(drop=True)


def write_config(home: Path, rugpull_file: Path, quick: bool) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "evolve-edge.yaml").read_text())
    evolve = raw["evolve"]
    evolve["data"] |= {
        "fear_greed": str(SHARED / "feargreed_crypto_1d.csv.gz"),
        "trades": [str(SHARED / "binance_XRP-ETH_trades.csv.gz")],
        "rugpull_tokens": str(rugpull_file),
    }
    if quick:
        evolve |= QUICK
    path = home / "evolve-edge.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# -- evolution -------------------------------------------------------------------------------------


def evolve(config: Any, store: Any, home: Path) -> str:
    from cluster.evolve import start_or_resume

    last = [-1]

    def show(progress: Any) -> None:
        if progress.generation != last[0] and progress.planned:
            last[0] = progress.generation
            log(f"generation {progress.generation}: training {progress.planned} children")

    run = start_or_resume(config, config.evolve, store, home, on_progress=show)
    log(f"run {run.run_id}: {run.generations_done} generations in {run.seconds / 60:.1f} min")
    return run.run_id


def check_final_test_unseen(home: Path, cutoff_ms: int) -> int:
    """Every dataset written under the data root ends before the final test; returns their count."""
    from agents.datasets import read_dataset

    files = sorted((home / "training_db").rglob("*.parquet"))
    for path in files:
        ds = read_dataset(path)
        if ds.close is not None and len(ds.ts) and int(ds.ts.max()) >= cutoff_ms:
            raise SystemExit(f"{path}: a bar at {int(ds.ts.max())} >= the final test's start")
    return len(files)


def show_champions(store: Any) -> int:
    champions = store.champions.champions()
    log(f"champions crowned under the default rules: {len(champions)}")
    for row in champions:
        value = (
            f"Sharpe {row.sharpe:+.2f}"
            if row.sharpe is not None
            else f"AUC {row.metrics.get('auc', math.nan):.3f}"
        )
        log(f"  {row.specialty:18s} {row.regime:16s} {row.agent_id:14s} {value}"
            f"  DSR {row.dsr if row.dsr is not None else math.nan:.2f}"
            f"  trials {row.n_trials}")  # fmt: skip
    best: dict[tuple[str, str], Any] = {}
    for promotion in store.champions.promotions():
        key = (promotion.specialty, promotion.regime)
        if promotion.decision == "REFUSED" and (
            key not in best or (promotion.dsr or 0.0) > (best[key].dsr or 0.0)
        ):
            best[key] = promotion
    if best:
        log("the best refused challenger per (specialty, regime):")
        for (specialty, regime), promotion in sorted(best.items()):
            log(f"  {specialty:18s} {regime:16s} {promotion.reason}")
    return len(champions)


# -- the final test ------------------------------------------------------------------------------


def stats(frame: pd.DataFrame, positions: np.ndarray) -> dict[str, float]:
    """``market.equity.equity_stats`` at the benchmark's fee, on hourly bars."""
    return equity_stats(frame, positions, fee_bps=FEE_BPS, timeframe="1h")


def realized_vol(close: np.ndarray) -> np.ndarray:
    """Annualized volatility of the previous ``VOL_WINDOW`` hourly returns, known at each close."""
    r = pd.Series(np.log(close)).diff()
    return (r.rolling(VOL_WINDOW).std() * math.sqrt(24 * 365)).to_numpy()


def baselines(candles: pd.DataFrame, start: int) -> tuple[dict[str, np.ndarray], str]:
    """The baselines' positions over ``candles[start:]`` (the final test), each decided from the
    bars up to its own close; SMA pair and vol target chosen on the bars before ``start``."""
    close = candles["close"].to_numpy(dtype=np.float64)
    train = candles.iloc[:start].reset_index(drop=True)
    pair = choose_sma(train, fee_bps=FEE_BPS, timeframe="1h")
    best = stats(train, sma_cross(train, *pair))["sharpe"]
    vol = realized_vol(close)
    target = float(np.nanmedian(vol[:start]))
    vt = np.minimum(1.0, target / vol)
    n = len(candles) - start
    return {
        "buy_and_hold": np.ones(n),
        "vol_target_bh": np.nan_to_num(vt[start:], nan=0.0),
        "sma_cross": sma_cross(candles, *pair)[start:],
    }, f"SMA({pair[0]},{pair[1]}) train Sharpe {best:+.2f}, vol target {target:.0%}"


def replay(
    ensemble: Any, candles: pd.DataFrame, start: int, symbol: str
) -> tuple[np.ndarray, dict[str, int]]:
    """The served position at every bar from ``start``: ``Ensemble.predict`` on the ``HISTORY``
    candles up to and including that bar."""
    from serving.ensemble import candle_columns

    cols = ["ts", "open", "high", "low", "close", "volume"]
    values = candles[cols].to_numpy(dtype=np.float64)
    out = np.zeros(len(candles) - start)
    reasons: dict[str, int] = {}
    for i, t in enumerate(range(start, len(candles))):
        window = values[max(0, t + 1 - HISTORY) : t + 1]
        answer = ensemble.predict(
            candle_columns(window.tolist()), exchange="binance", symbol=symbol, timeframe="1h",
            request_id=f"edge-{i}",
        )  # fmt: skip
        out[i] = answer.signal.direction * answer.position_size
        if answer.signal.direction == 0:
            key = (answer.signal.reason or "flat").split(":")[0][:60]
            reasons[key] = reasons.get(key, 0) + 1
    return out, reasons


def final_test(store: Any, home: Path, tokens: pd.DataFrame, quick: bool) -> dict[str, Any]:
    from market.series import SeriesKey
    from serving.ensemble import Ensemble

    ensemble = Ensemble.load(store, home)
    voting = sum(len(found) for found in ensemble.members.values())
    log(f"served ensemble {ensemble.version}: {voting} voting member(s), rug-pull member "
        f"{'yes' if ensemble.rugpull_member else 'none'}")  # fmt: skip
    start_ms, end_ms = (
        parse_when(FINAL_TEST_START, "FINAL_TEST_START"),
        parse_when(FINAL_TEST_END, "FINAL_TEST_END"),
    )
    rows: list[dict[str, Any]] = []
    for symbol in SYMBOLS:
        key = SeriesKey("binance", symbol, "1h")
        candles = store.candles.load_candles(key, None, end_ms).reset_index(drop=True)
        start = int(np.searchsorted(candles["ts"].to_numpy(), start_ms))
        frame = candles.iloc[start:].reset_index(drop=True)
        base, chosen = baselines(candles, start)
        began = time.perf_counter()
        served, reasons = replay(ensemble, candles, start, symbol)
        seconds = time.perf_counter() - began
        row = {"symbol": symbol, "bars": len(frame), "chosen": chosen,
               "served": stats(frame, served), "flat": reasons,
               **{name: stats(frame, p) for name, p in base.items()}}  # fmt: skip
        rows.append(row)
        log(f"{symbol}: {len(frame)} bars replayed in {seconds:.0f}s ({chosen})")
        for name in ("served", "buy_and_hold", "vol_target_bh", "sma_cross"):
            s = row[name]
            log(f"    {name:14s} Sharpe {s['sharpe']:+6.2f}  return {s['total_return']:+8.1%}  "
                f"max DD {s['max_drawdown']:+7.1%}  exposure {s['mean_abs_position']:5.2f}  "
                f"turnover {s['traded']:8.1f}")  # fmt: skip
        if reasons:
            top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
            log("    flat bars: " + "; ".join(f"{n}x {r}" for r, n in top))
    auc = math.nan
    if ensemble.rugpull_member is not None:
        features = [c for c in tokens.columns if c not in ("is_rugpull", "token_address", "id")]
        numeric = [c for c in features if pd.api.types.is_numeric_dtype(tokens[c])]
        probs = np.array([
            ensemble.rugpull({c: float(v) for c, v in zip(numeric, row, strict=True)}).probability
            for row in tokens[numeric].to_numpy(dtype=np.float64)
        ])  # fmt: skip
        auc = roc_auc(tokens["is_rugpull"].to_numpy(), probs)
        log(f"rug pulls: {len(tokens)} held-out tokens, served AUC {auc:.3f}")
    else:
        log("rug pulls: no rug-pull champion was crowned, nothing served")
    return {"rows": rows, "rugpull_auc": auc, "voting": voting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 generations, a smaller population")
    parser.add_argument("--home", type=Path, help="keep the data root here (default: a temp dir)")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: the shared data folder is missing (REDLINE_SHARED_DATA)")
    home = args.home or Path(tempfile.mkdtemp(prefix="redline-edge-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["REDLINE_HOME"] = str(home)
    from cluster.config import ChampionsConfig, load_config
    from store.db import Store

    began = time.perf_counter()
    store = Store.open(f"sqlite:///{home / 'redline.db'}")
    import_series(store)
    rugpull_file, held_tokens = split_tokens(home)
    config = load_config(write_config(home, rugpull_file, args.quick))
    if config.champions != ChampionsConfig():
        raise SystemExit("the edge benchmark judges under the default champion rules only")
    log(f"champion rules: the defaults ({config.champions.model_dump()})")
    if args.quick:
        log("--quick: 2 generations and a smaller population; the champion rules are the defaults")
    store.regimes.sync_regime_definitions(config.regimes)
    evolve(config, store, home)
    cutoff = parse_when(FINAL_TEST_START, "FINAL_TEST_START")
    log(f"{check_final_test_unseen(home, cutoff)} datasets checked: none reads a bar of the "
        f"final test ({FINAL_TEST_START} on)")  # fmt: skip
    champions = show_champions(store)
    result = final_test(store, home, held_tokens, args.quick)
    rows = result["rows"]
    beat_bh = sum(r["served"]["sharpe"] > r["buy_and_hold"]["sharpe"] for r in rows)
    beat_sma = sum(r["served"]["sharpe"] > r["sma_cross"]["sharpe"] for r in rows)
    beat_vt = sum(r["served"]["sharpe"] > r["vol_target_bh"]["sharpe"] for r in rows)
    if result["voting"] == 0:
        log("nothing that votes passed the default gate: the served ensemble stays flat on every "
            "bar (an honest result; no bar was lowered)")  # fmt: skip
    log(f"done in {(time.perf_counter() - began) / 60:.1f} min; data root {home}")
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    auc = result["rugpull_auc"]
    print(
        f"RESULT symbols_beating_bh={beat_bh} symbols_beating_sma={beat_sma} "
        f"symbols_beating_vol_target={beat_vt} champions={champions} "
        f"voting_members={result['voting']} "
        f"rugpull_auc={'none' if not math.isfinite(auc) else f'{auc:.3f}'}"
    )


if __name__ == "__main__":
    main()
