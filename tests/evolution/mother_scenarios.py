"""The runs ``test_mother.py`` checks, each made in a process where ``import ray`` raises.

``python -m tests.evolution.mother_scenarios <scenario> <home>`` sets ``sys.modules["ray"] = None``
before anything of Redline is imported (this module's own imports are the standard library's; the
Mother's are made inside :func:`main`), so ``import ray`` raises ImportError from then on. The plain ``evolution.mother.Mother`` runs on ``agents.pool.LocalPool``
(children trained one after another in this process, real torch), writing to a real SQLite store
under that data root; the test reads the outcome from there. :func:`main` refuses to start unless
``import ray`` fails, and to finish if any ``ray`` module got loaded on the way.

Scenarios (run id ``r-mother``, root seed 7, the shipped BTC/USDT 1h sample from 2024-01-01):

- ``full``: four technical_analysts and two report_coordinators for three generations;
- ``crash``: the same run, its process killed (``os._exit``) right after the first child of
  generation 1 is recorded; ``resume`` then finishes it in a fresh process;
- ``failing``: five technical_analysts for two generations whose first three children of
  generation 0 cannot train: a learning rate of 1e30 (the loss goes NaN), a ``feature_set`` the
  dataset does not have, and a checkpoint that cannot be written (the worker raises).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

RUN_ID = "r-mother"
ROOT_SEED = 7
START = "2024-01-01"
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # kills and generations are stamped with it: comparable
CRASH_EXIT = 17  # the exit status of the ``crash`` scenario's process
FULL_POPULATION = {"report_coordinator": 2, "technical_analyst": 4}
FULL_GENERATIONS = 3
FAILING_POPULATION = {"technical_analyst": 5}
FAILING_GENERATIONS = 2
MIN_HIT_RATE = 0.55  # above most children's out-of-sample hit rate here: the non-elites die
SCENARIOS = ("full", "crash", "resume", "failing")


def _ray_is_blocked() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return True
    return False


def main(scenario: str, home: Path) -> None:
    if not _ray_is_blocked():
        raise SystemExit("ray is importable here: run this module with python -m")
    if scenario not in SCENARIOS:
        raise SystemExit(f"scenario must be one of {', '.join(SCENARIOS)}; got {scenario!r}")
    _run(scenario, home)
    loaded = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
    if loaded != ["ray"] or sys.modules["ray"] is not None:
        raise SystemExit(f"the Mother's run loaded Ray: {loaded}")


def _run(scenario: str, home: Path) -> None:
    # Imported only now: the caller has made ``import ray`` fail before this point.
    from agents.datasets import build_datasets
    from agents.genome import Genome
    from agents.pool import LocalPool
    from agents.sources import DataSources
    from agents.specialties import get_specialty
    from evolution.brain import COORDINATOR
    from evolution.lineage import new_agent_id
    from evolution.mother import EvolutionSettings, Mother, Progress
    from evolution.seeds import child_seed, initial_population
    from evolution.selection import KillRule
    from market.backtest import DEFAULT_FEE_BPS
    from market.when import parse_when
    from store.db import Store
    from store.ingest import import_file, sample_files
    from store.paths import DataRoot
    from store.records.population import AgentRecord, RunRecord

    # The store's clock too: rows stamped when they are written compare across runs.
    store = Store.open(f"sqlite:///{home / 'redline.db'}", home=home, clock=lambda: NOW)
    runs = store.runs  # the same clock: one database object hands it to every repository
    if scenario != "resume":
        (btc,) = (path for path in sample_files() if path.name.startswith("binance_BTC-USDT_1h"))
        import_file(store, btc)
    sources = DataSources(store, symbols=("BTC/USDT",), start_ms=parse_when(START, "START"))
    (dataset,) = build_datasets("technical_analyst", sources)
    datasets = {f"technical_analyst/{dataset.name}": dataset}

    failing = scenario == "failing"
    population = FAILING_POPULATION if failing else FULL_POPULATION
    settings = EvolutionSettings(
        root_seed=ROOT_SEED,
        generations=FAILING_GENERATIONS if failing else FULL_GENERATIONS,
        population=population,
        datasets={name: dataset.name for name in population},
        kill=KillRule(min_hit_rate=MIN_HIT_RATE, bottom_quantile=0.25, protect_elites=2),
        fee_bps=DEFAULT_FEE_BPS,
    )
    assert COORDINATOR in FULL_POPULATION
    if scenario != "resume":
        runs.create_run(
            RunRecord(run_id=RUN_ID, config={"scenario": scenario}, config_hash=scenario,
                      root_seed=ROOT_SEED, generations_planned=settings.generations)
        )  # fmt: skip
    if failing:  # generation 0 written by hand, as the Mother would, with three broken children
        space = get_specialty("technical_analyst").space
        births = []
        for index, genome in enumerate(initial_population(space, 5, ROOT_SEED)):
            # lr drives the torch families only: the NaN child is pinned to the MLP.
            broken = {0: {"lr": 1e30, "family": "mlp"},
                      1: {"feature_set": "order_book"}}.get(index)  # fmt: skip
            if broken:
                genome = Genome(genome.specialty, tuple(
                    (gene, broken.get(gene, value)) for gene, value in genome.values
                ))  # fmt: skip
            agent_id = f"{RUN_ID}.{new_agent_id(genome.specialty, 0, index)}"
            births.append(
                AgentRecord(
                    agent_id=agent_id, run_id=RUN_ID, specialty=genome.specialty, generation=0,
                    genome_json=genome.to_json(), genome_digest=genome.digest(),
                    seed=child_seed(ROOT_SEED, 0, index, specialty=genome.specialty),
                    config_hash=scenario,
                )
            )  # fmt: skip
            if index == 2:  # its checkpoint's name is taken by a folder: saving it raises
                (DataRoot(home).checkpoints / f"{agent_id}_gen0.pt" / "taken").mkdir(parents=True)
        runs.add_agents(births)

    def crash_after_first_child_of_generation_1(progress: Progress) -> None:
        if progress.generation == 1 and progress.trained == 1:
            os._exit(CRASH_EXIT)  # killed: no cleanup, no closing of the generation

    pool = LocalPool(home, datasets)
    mother = Mother(
        RUN_ID,
        runs,
        pool,
        datasets,
        settings,
        home,
        config_hash=scenario,
        on_progress=crash_after_first_child_of_generation_1 if scenario == "crash" else None,
        now=lambda: NOW,
    )
    mother.run()
    pool.close()
    store.close()


if __name__ == "__main__":
    sys.modules["ray"] = None  # type: ignore[assignment]  # `import ray` raises from here on
    main(sys.argv[1], Path(sys.argv[2]))
