"""``redline evolve``, ``redline data prepare`` and ``redline mother train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cli.state import CliState, make_console, open_store, status_progress
from cluster.config import load_config
from evolution.brain import latest_brain
from evolution.mother import Progress as MotherProgress
from market.regimes import REGIMES

console = make_console()


def evolve_cmd(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="An evolve config, e.g. configs/evolve-smoke.yaml."
    ),
    resume: str | None = typer.Option(
        None, "--resume", help="Finish the run RUN_ID, with the config stored with it."
    ),
    override_config: bool = typer.Option(
        False,
        "--override-config",
        help="With --resume and --config: use the given config instead of the run's stored one "
        "(a warning names every key that changed).",
    ),
) -> None:
    """Evolve a population of children on Ray; Ctrl-C or a crash loses nothing `--resume` cannot redo."""
    from cluster.evolve import start_or_resume

    state: CliState = ctx.obj
    cfg = load_config(config) if config else state.config
    if not resume and cfg.evolve is None:
        raise ValueError(
            "redline evolve needs --config FILE with an 'evolve' section, or --resume RUN_ID"
        )
    if override_config and not (resume and (config or state.config_path)):
        raise ValueError("--override-config needs --resume RUN_ID and --config FILE")
    # A resume uses the run's stored config; a config named on the command line is checked
    # against it (refused if it differs, unless --override-config).
    given = cfg if not resume or config or state.config_path else None
    store = open_store(state)
    lowered = cfg.champions.changed_from_defaults()
    if lowered:
        console.print(
            "[yellow]champion rules differ from the project's defaults: "
            f"{'; '.join(lowered)}[/]: do not serve a real bot from what they crown"
        )
    with status_progress(console) as bars:
        task = bars.add_task("preparing datasets", total=None, status="")

        def show(progress: MotherProgress) -> None:
            best = ", ".join(f"{k} {v:+.2f}" for k, v in sorted(progress.best.items()))
            bars.update(
                task,
                description=f"generation {progress.generation}",
                total=progress.planned or None,
                completed=progress.trained,
                status=f"failed {progress.failed}, killed {progress.killed}; best Sharpe: {best}",
            )

        result = start_or_resume(
            given,
            cfg.evolve,
            store,
            state.home,
            resume=resume,
            override_config=override_config,
            on_progress=show,
        )
    stats = latest_brain(state.home, result.run_id)
    if stats:
        console.print(brain_table(stats))
    console.print(
        f"run [bold]{result.run_id}[/]: {result.generations_done} generations in {result.seconds:.0f}s. "
        f"See `redline children {result.run_id}`, `redline generations {result.run_id}`, "
        f"`redline kills {result.run_id}`."
    )


def prepare_cmd(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="An evolve config."),
) -> None:
    """Build every specialty's datasets under training_db/ (the shared 'dining hall')."""
    from agents.datasets import dataset_path
    from cluster.evolve import prepare_datasets

    state: CliState = ctx.obj
    cfg = load_config(config)
    evolve = cfg.require_evolve(str(config))
    datasets = prepare_datasets(evolve, open_store(state), cfg, state.home)
    for key, dataset in datasets.items():
        specialty, name = key.split("/", 1)
        console.print(
            f"{specialty:18s} {name:32s} {dataset.n_rows:>7,} rows x {len(dataset.feature_names):>2} "
            f"features -> {dataset_path(state.home, specialty, name)}"
        )


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1%}" if pct else f"{value:+.2f}"


def brain_table(stats: dict[str, Any]) -> Table:
    """Champions per regime beside the best single child and buy-and-hold, out of sample."""
    table = Table(
        "regime", "champion", "mother brain Sharpe", "best child Sharpe", "buy & hold Sharpe",
        "brain return", "buy & hold return",
        title=f"mother brain {stats['version']}: out of sample, {stats['oos_rows']:,} bars",
    )  # fmt: skip
    for regime in REGIMES:
        champ = stats["champions"].get(regime)
        per = stats["per_regime"].get(regime, {})
        table.add_row(
            regime,
            champ["agent_id"].split(".", 1)[-1] if champ else "none",
            _fmt(per.get("mother_brain", {}).get("sharpe")),
            _fmt(per.get("best_child", {}).get("sharpe")),
            _fmt(per.get("buy_and_hold", {}).get("sharpe")),
            _fmt(per.get("mother_brain", {}).get("total_return"), pct=True),
            _fmt(per.get("buy_and_hold", {}).get("total_return"), pct=True),
        )
    scores = stats["scores"]
    table.add_row(
        "[bold]all bars", "",
        _fmt(scores["mother_brain"].get("sharpe")),
        _fmt(scores.get("best_child", {}).get("sharpe")),
        _fmt(scores["buy_and_hold"].get("sharpe")),
        _fmt(scores["mother_brain"].get("total_return"), pct=True),
        _fmt(scores["buy_and_hold"].get("total_return"), pct=True),
    )  # fmt: skip
    return table


def mother_train_cmd(
    ctx: typer.Context, run_id: str = typer.Argument(..., help="The run whose champions to refit.")
) -> None:
    """Refit the mother brain on RUN_ID's current champions (a new version under ai_models/)."""
    from cluster.evolve import prepare_datasets, run_config, settings_for
    from evolution.brain import COORDINATOR, fit_mother_brain

    state: CliState = ctx.obj
    store = open_store(state)
    runs = store.runs
    run = runs.get_run(run_id)
    if run is None:
        raise ValueError(f"no run {run_id!r} in {store.url_for_display}; see `redline runs`")
    config = run_config(run)  # the run's own regime rules rebuild its datasets
    evolve = config.require_evolve(f"run {run_id}")
    if COORDINATOR not in evolve.population:
        raise ValueError(f"run {run_id} has no report_coordinator, so it has no mother brain")
    datasets = prepare_datasets(evolve, store, config, state.home, write=False)
    name = settings_for(evolve, datasets).datasets[COORDINATOR]
    base = next(ds for key, ds in datasets.items() if key.split("/", 1)[1] == name)
    pools = [ds for ds in datasets.values() if ds.pooled]
    brain = fit_mother_brain(
        run_id, runs, state.home, base, fee_bps=evolve.training.fee_bps, pools=pools
    )
    console.print(brain_table(json.loads((brain.path / "training_stats.json").read_text())))
    console.print(f"saved {brain.path}")
