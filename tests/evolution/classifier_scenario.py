"""A rug-pull evolution for ``test_classifier_mother.py``, made in a process where ``import ray``
raises (as ``mother_scenarios``): ``python -m tests.evolution.classifier_scenario <home>
<tokens.csv.gz> <held out>``.

Run ``r-rugpull``, root seed 7: two rugpull_detector children for one generation on the real
Uniswap V2 tokens of ../shared/data, ``<held out>`` tokens drawn at random (seed 7,
:func:`split_tokens`) left out: a test may score them later, no child ever saw them. The plain ``evolution.mother.Mother`` on
``agents.pool.LocalPool`` writes to a real SQLite store under ``<home>``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUN_ID = "r-rugpull"
ROOT_SEED = 7
NOW = datetime(2026, 1, 1, tzinfo=UTC)
POPULATION = {"rugpull_detector": 2}


def main(home: Path, tokens: Path, held_out: int) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("ray is importable here: run this module with python -m")
    run(home, tokens, held_out)
    loaded = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
    if loaded != ["ray"] or sys.modules["ray"] is not None:
        raise SystemExit(f"the Mother's run loaded Ray: {loaded}")


def split_tokens(frame: Any, held_out: int) -> tuple[Any, Any]:
    """``(trained on, held out)``: ``held_out`` rows of the token table drawn with seed 7 (the
    file is ordered: its first rows are mostly not rug pulls, its last ones mostly are)."""
    import numpy as np

    order = np.random.default_rng(ROOT_SEED).permutation(len(frame))
    held = np.sort(order[:held_out])
    kept = np.sort(order[held_out:])
    return frame.iloc[kept].reset_index(drop=True), frame.iloc[held].reset_index(drop=True)


def run(home: Path, tokens: Path, held_out: int) -> None:
    """The run itself (also called in-process by tests that have Ray: the Mother never uses it)."""
    import pandas as pd

    from agents.banks import rugpull_dataset
    from agents.pool import LocalPool
    from evolution.mother import EvolutionSettings, Mother
    from store.db import Store
    from store.records.population import RunRecord

    frame = pd.read_csv(tokens)
    dataset = rugpull_dataset(split_tokens(frame, held_out)[0])
    datasets = {f"rugpull_detector/{dataset.name}": dataset}
    with Store.open(f"sqlite:///{home / 'redline.db'}", home=home, clock=lambda: NOW) as store:
        settings = EvolutionSettings(
            root_seed=ROOT_SEED,
            generations=1,
            population=POPULATION,
            datasets={"rugpull_detector": dataset.name},
        )
        store.runs.create_run(
            RunRecord(run_id=RUN_ID, config={"scenario": "rugpull"}, config_hash="rugpull",
                      root_seed=ROOT_SEED, generations_planned=settings.generations)
        )  # fmt: skip
        pool = LocalPool(home, datasets)
        Mother(RUN_ID, store.runs, pool, datasets, settings, home, config_hash="rugpull",
               now=lambda: NOW).run()  # fmt: skip
        pool.close()


if __name__ == "__main__":
    sys.modules["ray"] = None  # type: ignore[assignment]  # `import ray` raises from here on
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
