"""A retrain's generation 0 continues the previous retrain's hall of fame: its best children by
out-of-sample Sharpe (at most ``hall_of_fame`` per specialty), from the last retrain before the
slot."""

from __future__ import annotations

from pathlib import Path

from agents.specialties import get_specialty
from cluster.config import LiveConfig, load_config
from evolution.seeds import initial_population
from live.jobs import LiveContext
from live.retrain import _previous_run, ancestors
from store.db import Store
from store.records.population import AgentRecord, RunRecord

WEEK = 7 * 86_400_000


def test_the_hall_of_fame_of_the_last_retrain_before_the_slot(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'redline.db'}")
    space = get_specialty("technical_analyst").space
    store.runs.create_run(RunRecord("r-prev", {"seed": 7}, "c" * 64, 7, 1))
    genomes = initial_population(space, 4, 7)
    outcomes = [("OK", 0.5), ("OK", 1.5), ("FAILED", None), ("OK", -1.0)]
    store.runs.upsert_agents([
        AgentRecord(run_id="r-prev", agent_id=f"r-prev.ta-g000-00{i}", specialty="technical_analyst",
                    generation=0, genome_json=g.to_json(), genome_digest=g.digest(), seed=i,
                    status=status, sharpe=sharpe)
        for i, (g, (status, sharpe)) in enumerate(zip(genomes, outcomes, strict=True))
    ])  # fmt: skip
    live = LiveConfig(evolve={"seed": 7, "population": {"technical_analyst": 4}, "hall_of_fame": 2})  # type: ignore[arg-type]
    ctx = LiveContext(load_config().model_copy(update={"live": live}), live, store, tmp_path,
                      lambda: 0)  # fmt: skip
    store.live.event(0, "retrain", "r-prev", children=4)
    store.live.event(WEEK, "retrain", "r-this-slot", children=4)  # its own: not a previous one
    assert _previous_run(ctx, 0) is None
    previous = _previous_run(ctx, WEEK)
    assert previous == "r-prev"
    carried = ancestors(ctx, previous)
    assert {k: [agent for agent, _ in v] for k, v in carried.items()} == {
        "technical_analyst": ["r-prev.ta-g000-001", "r-prev.ta-g000-000"]}  # fmt: skip
    assert carried["technical_analyst"][0][1] == genomes[1].to_json()
