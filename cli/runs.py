"""``redline runs``, ``children``, ``generations``, ``lineage``, ``kills`` and ``restore``.

Everything here reads what a run left behind: the database (``store.runs.RunStore``) and the data
root's files (checkpoints, playgrounds, ``training_db``). Nothing writes to the database; only
``generations`` writes a file (its PNG plot). Tables name agents by their id within the run (the
part after ``<run_id>.``) when the run is in the title; ``lineage`` and ``restore`` take full ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from cli.state import CliState, make_console, num, open_store
from evolution.brain import COORDINATOR
from store.db import Store
from store.paths import DataRoot
from store.records.population import AgentRecord, AgentStatus, GenerationRecord, RunRecord
from store.runs import RunStore

if TYPE_CHECKING:
    from agents.dataset import Dataset

console = make_console()

#: ``--sort`` keys of ``redline children``: (what the key reads, best first when True).
SORT_KEYS: dict[str, tuple[Callable[[AgentRecord], float | None], bool]] = {
    "sharpe": (lambda a: a.sharpe, True),
    "hit_rate": (lambda a: a.hit_rate, True),
    "max_drawdown": (lambda a: a.max_drawdown, False),
    "train_seconds": (lambda a: a.train_seconds, True),
}
SAME_SCORES_TOLERANCE = 1e-6


# -- lookups that fail with a message naming the value --------------------------------------------


def require_run(runs: RunStore, store: Store, run_id: str) -> RunRecord:
    run = runs.get_run(run_id)
    if run is None:
        raise ValueError(f"no run {run_id!r} in {store.url_for_display}; see `redline runs`")
    return run


def require_agent(runs: RunStore, store: Store, agent_id: str) -> AgentRecord:
    agent = runs.agent(agent_id)
    if agent is None:
        raise ValueError(
            f"no agent {agent_id!r} in {store.url_for_display}; agent ids look like "
            "'<run_id>.ta-g001-002': see `redline children RUN_ID`"
        )
    return agent


def short_id(agent_id: str, run_id: str) -> str:
    """``ta-g001-002`` of ``<run_id>.ta-g001-002``."""
    prefix = f"{run_id}."
    return agent_id[len(prefix) :] if agent_id.startswith(prefix) else agent_id


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def fitness(value: float | None) -> str:
    """How ``generations`` prints a fitness (tests compare with the records this way)."""
    return num(value, "+.4f")


def fate(agent: AgentRecord) -> str:
    if agent.killed_generation is None:
        return "alive"
    return f"killed at gen {agent.killed_generation}"


# -- runs, children, generations, kills -----------------------------------------------------------


runs_app = typer.Typer(help="Every run, newest first; `redline runs search` ranks trained configs.")


@runs_app.callback(invoke_without_command=True)
def runs_main(ctx: typer.Context) -> None:
    """Every run, newest first (evolution runs and Tune experiments).

    `redline runs search` ranks the trained Tune configs.
    """
    if ctx.invoked_subcommand is None:
        runs_cmd(ctx)


def runs_cmd(ctx: typer.Context) -> None:
    """Every run, newest first: status, progress, seed, config hash, specialties.

    A Tune experiment (``tune-<grid hash>``) shows its grid instead of a population.
    """
    store = open_store(ctx.obj)
    records = store.runs.list_runs()
    table = Table(
        "run", "status", "created (UTC)", "generations", "seed", "config", "specialties",
        title=f"{len(records)} runs in {store.url_for_display}",
    )  # fmt: skip
    for run in records:
        population = run.config.get("population", {})
        table.add_row(
            run.run_id,
            run.status,
            _when(run.created_at),
            f"{run.generations_done}/{run.generations_planned}",
            str(run.root_seed),
            run.config_hash[:12],
            ", ".join(f"{name} x{size}" for name, size in population.items())
            if population or "specialty" not in run.config
            else f"tune grid {run.config.get('name', '?')}: {run.config['specialty']}",
        )
    console.print(table)


def children_cmd(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The run (see `redline runs`)."),
    specialty: str | None = typer.Option(None, "--specialty", "-s", help="Only this specialty."),
    generation: int | None = typer.Option(
        None, "--generation", "-g", help="Only the children born in this generation."
    ),
    sort: str | None = typer.Option(
        None, "--sort", help=f"Best first by one of: {', '.join(SORT_KEYS)}."
    ),
) -> None:
    """Out-of-sample performance of every child of RUN_ID, and whether it is alive or killed."""
    store = open_store(ctx.obj)
    runs = store.runs
    run = require_run(runs, store, run_id)
    population = run.config.get("population", {})
    if specialty is not None and specialty not in population:
        raise ValueError(
            f"--specialty must be one of {', '.join(population)} (run {run_id}); got {specialty!r}"
        )
    if generation is not None and not 0 <= generation < run.generations_planned:
        raise ValueError(
            f"--generation must be in 0..{run.generations_planned - 1} (run {run_id}); "
            f"got {generation}"
        )
    agents = runs.agents(run_id, generation=generation, specialty=specialty)
    if sort is not None:
        agents = sort_children(agents, sort)
    table = Table(
        "agent", "specialty", "born", "status", "sharpe", "max drawdown", "hit rate", "fate",
        "train s", title=f"run {run_id}: {len(agents)} children (out of sample)",
    )  # fmt: skip
    for agent in agents:
        table.add_row(
            short_id(agent.agent_id, run_id),
            agent.specialty,
            str(agent.generation),
            agent.status,
            num(agent.sharpe),
            num(agent.max_drawdown, ".1%"),
            num(agent.hit_rate, ".1%"),
            fate(agent),
            num(agent.train_seconds, ".1f"),
        )
    console.print(table)


def sort_children(agents: Sequence[AgentRecord], key: str) -> list[AgentRecord]:
    """Best first by ``key`` (see SORT_KEYS); children without the value last, then by id."""
    if key not in SORT_KEYS:
        raise ValueError(f"--sort must be one of {', '.join(SORT_KEYS)}; got {key!r}")
    read, descending = SORT_KEYS[key]

    def order(agent: AgentRecord) -> tuple[bool, float, str]:
        value = read(agent)
        if value is None:
            return True, 0.0, agent.agent_id
        return False, -value if descending else value, agent.agent_id

    return sorted(agents, key=order)


def generations_cmd(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The run (see `redline runs`)."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Where the PNG goes; default evolution_logs/<run_id>_fitness.png."
    ),
) -> None:
    """Fitness per generation and specialty (best, median, counts), and a PNG plot of it."""
    state: CliState = ctx.obj
    store = open_store(state)
    runs = store.runs
    run = require_run(runs, store, run_id)
    records = runs.generations(run_id)
    table = Table(
        "generation", "specialty", "best fitness", "median fitness", "evaluated", "failed",
        "killed", "alive", "best agent",
        title=f"run {run_id}: {run.generations_done}/{run.generations_planned} generations "
        "(fitness: weighted out-of-sample objectives)",
    )  # fmt: skip
    for record in records:
        table.add_row(
            str(record.generation),
            record.specialty,
            fitness(record.best_fitness),
            fitness(record.median_fitness),
            str(record.evaluated),
            str(record.failed),
            str(record.killed),
            str(record.alive),
            short_id(record.best_agent_id, run_id) if record.best_agent_id else "-",
        )
    console.print(table)
    if not records:
        console.print(f"run {run_id} has no finished generation yet: no plot")
        return
    path = plot or DataRoot(state.home).evolution_logs / f"{run_id}_fitness.png"
    plot_fitness(records, path, title=f"run {run_id}")
    console.print(f"plot: {path}")


def plot_fitness(records: Sequence[GenerationRecord], path: Path, *, title: str) -> Path:
    """Best (solid) and median (dashed) fitness per generation, one colour per specialty."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)  # no pyplot: no global state, no display needed
    axes = figure.add_subplot()
    for index, specialty in enumerate(sorted({r.specialty for r in records})):
        rows = [r for r in records if r.specialty == specialty]
        x = [r.generation for r in rows]
        best = [math.nan if r.best_fitness is None else r.best_fitness for r in rows]
        median = [math.nan if r.median_fitness is None else r.median_fitness for r in rows]
        color = f"C{index}"
        axes.plot(x, best, marker="o", color=color, label=f"{specialty} best")
        axes.plot(x, median, marker=".", linestyle="--", color=color, label=f"{specialty} median")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("generation")
    axes.set_ylabel("fitness (weighted out-of-sample objectives)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def kills_cmd(
    ctx: typer.Context, run_id: str = typer.Argument(..., help="The run (see `redline runs`).")
) -> None:
    """Every kill of RUN_ID: the generation whose scores killed the child, and why."""
    store = open_store(ctx.obj)
    runs = store.runs
    require_run(runs, store, run_id)
    specialty = {agent.agent_id: agent.specialty for agent in runs.agents(run_id)}
    kills = runs.kills(run_id)
    table = Table(
        "generation", "agent", "specialty", "reason", "detail", title=f"run {run_id}: {len(kills)} kills"
    )  # fmt: skip
    for kill in kills:
        table.add_row(
            str(kill.generation),
            short_id(kill.agent_id, run_id),
            specialty.get(kill.agent_id, "?"),
            escape(kill.reason),
            escape(kill.detail),
        )
    console.print(table)


# -- lineage -------------------------------------------------------------------------------------


def lineage_cmd(
    ctx: typer.Context,
    agent_id: str = typer.Argument(..., help="A full agent id, e.g. <run_id>.ta-g001-002."),
) -> None:
    """The agent and its parents back to generation 0: operators applied and seeds."""
    store = open_store(ctx.obj)
    runs = store.runs
    agent = require_agent(runs, store, agent_id)
    ancestors = runs.ancestors(agent.agent_id, run_id=agent.run_id)
    console.print(lineage_tree(agent, ancestors))
    earlier = [a for a in ancestors if a.run_id != agent.run_id]  # carried over by a retrain
    runs_named = ", ".join(sorted({a.run_id for a in earlier}))
    where = f"; {len(earlier)} of them in earlier runs: {runs_named}" if earlier else ""
    console.print(f"{len(ancestors)} ancestors back to generation 0 (run {agent.run_id}{where})")


def lineage_tree(agent: AgentRecord, ancestors: Sequence[AgentRecord]) -> Tree:
    """A family tree, child at the root; an ancestor reached twice is shown once."""
    by_id = {record.agent_id: record for record in ancestors}
    run_id = agent.run_id
    shown: set[str] = set()

    def label(record: AgentRecord) -> str:
        return (
            f"[bold]{short_id(record.agent_id, run_id)}[/]  {record.specialty}, generation "
            f"{record.generation}, seed {record.seed}, {record.status}, sharpe "
            f"{num(record.sharpe)}, {fate(record)}"
        )

    def grow(node: Tree, record: AgentRecord) -> None:
        shown.add(record.agent_id)
        if not record.parents:
            origin = "resampled from the genome space" if record.operators else "sampled"
            node.add(f"{origin} (generation {record.generation})")
        for operator in record.operators:
            node.add(f"operator {escape(operator)}", style="cyan")
        for parent_id in record.parents:
            parent = by_id.get(parent_id)
            if parent is None:
                node.add(f"parent {short_id(parent_id, run_id)}: not in the database")
            elif parent_id in shown:
                node.add(f"parent {short_id(parent_id, run_id)} (shown above)")
            else:
                grow(node.add("parent " + label(parent)), parent)

    tree = Tree(label(agent))
    grow(tree, agent)
    return tree


# -- restore -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    """A checkpoint scored again on the rows of its last walk-forward fold."""

    agent: AgentRecord
    checkpoint: Path
    sha256: str
    dataset: str  # "<specialty>/<name>"
    timed: bool  # ts are times (False: the row numbers of a token dataset)
    ts: np.ndarray
    stored: np.ndarray
    restored: np.ndarray

    @property
    def max_abs_diff(self) -> float:
        return float(np.max(np.abs(self.stored - self.restored))) if len(self.ts) else 0.0

    @property
    def same(self) -> bool:
        return len(self.ts) > 0 and self.max_abs_diff <= SAME_SCORES_TOLERANCE


def restore_cmd(
    ctx: typer.Context,
    agent_id: str = typer.Argument(..., help="A full agent id, e.g. <run_id>.ta-g001-002."),
    generation: int | None = typer.Option(
        None, "--generation", "-g", help="The checkpoint's generation (default: the agent's)."
    ),
) -> None:
    """Load a checkpoint (weights only) and score it again on its last fold: the same numbers."""
    state: CliState = ctx.obj
    store = open_store(state)
    runs = store.runs
    agent = require_agent(runs, store, agent_id)
    result = restore(
        runs, state.home, agent, agent.generation if generation is None else generation
    )
    console.print(
        f"checkpoint sha256 {result.sha256[:16]}… matches the agents row: {result.checkpoint}"
    )
    console.print(
        f"dataset digest {agent.dataset_digest[:16]}… matches the agents row: {result.dataset}"
    )
    n = len(result.ts)
    table = Table(
        "ts (UTC)" if result.timed else "token row", "stored score", "restored score", "difference",
        title=f"{short_id(agent.agent_id, agent.run_id)}: last fold, {n:,} rows (first, last 5)",
    )  # fmt: skip
    for i in sorted({*range(min(5, n)), *range(max(0, n - 5), n)}):
        ts = int(result.ts[i])
        table.add_row(
            _when(datetime.fromtimestamp(ts / 1000, UTC)) if result.timed else str(ts),
            f"{result.stored[i]:+.8f}",
            f"{result.restored[i]:+.8f}",
            f"{result.restored[i] - result.stored[i]:+.1e}",
        )
    console.print(table)
    console.print(
        f"stored:   mean {result.stored.mean():+.6f}, std {result.stored.std():.6f}\n"
        f"restored: mean {result.restored.mean():+.6f}, std {result.restored.std():.6f}\n"
        f"max |difference| {result.max_abs_diff:.2e} (tolerance {SAME_SCORES_TOLERANCE:g})"
    )
    console.print(f"same scores: {'yes' if result.same else 'no'}")
    if not result.same:
        raise typer.Exit(1)


def restore(runs: RunStore, home: Path, agent: AgentRecord, generation: int) -> Restored:
    """Verify and load ``agent``'s checkpoint of ``generation``, rebuild its dataset, and score
    the last fold's rows with it beside the scores stored when it trained.

    Refuses (ValueError naming the value) a checkpoint whose SHA-256 differs from the agents row,
    a checkpoint of another agent or genome, and a dataset whose digest differs from the row's.
    """
    import torch

    from agents.child import file_sha256, oos_path
    from agents.genome import Genome
    from agents.models import load_model
    from agents.training import plan_folds, scores_of_rows, window_inputs

    root = DataRoot(home)
    name = agent.agent_id
    if agent.status != AgentStatus.OK:
        raise ValueError(
            f"agent {name!r} is {agent.status}{': ' + agent.reason if agent.reason else ''}; "
            "only a trained (OK) child has a checkpoint"
        )
    path = root.checkpoints / f"{name}_gen{generation}.pt"
    if not path.is_file():
        raise ValueError(
            f"no checkpoint {path} for --generation {generation}: agent {name!r} trained in "
            f"generation {agent.generation} (checkpoints/{name}_gen{agent.generation}.pt)"
        )
    sha = file_sha256(path)
    if agent.checkpoint_sha256 != sha:
        raise ValueError(
            f"checkpoint {path} has sha256 {sha}, but the agents row of {name!r} records "
            f"{agent.checkpoint_sha256}: the file was changed or replaced; refusing to load it"
        )
    model, meta = load_model(path)
    genome = Genome.from_json(agent.genome_json)
    for key, expected in (("agent_id", name), ("genome", agent.genome_json), ("seed", agent.seed)):
        if meta.get(key) != expected:
            raise ValueError(
                f"checkpoint {path}: meta {key} is {meta.get(key)!r}; the agents row has {expected!r}"
            )
    run = runs.require_run(agent.run_id)
    key, dataset = _dataset_of(runs, root, run, agent)
    plans = plan_folds(dataset, genome, seed=agent.seed)
    last = plans[-1]
    with torch.no_grad():
        out = model(torch.from_numpy(window_inputs(dataset, genome, last.test_rows))).double()
    restored = out.numpy()
    if model.task == "classify":
        restored = np.tanh(restored / 2.0)  # the trainer's score: 2 * sigmoid(logit) - 1
    restored = scores_of_rows(dataset, genome, last.test_rows, restored)  # a primary's side
    with np.load(oos_path(root, name, agent.generation)) as data:
        oos_ts, oos_score = data["ts"], data["score"]
    # The stored scores are the concatenated folds' rows in dataset order (agents.training).
    rows = np.sort(np.concatenate([plan.test_rows for plan in plans]))
    if len(rows) != len(oos_score) or not np.array_equal(dataset.ts[rows], oos_ts):
        raise ValueError(
            f"{oos_path(root, name, agent.generation)}: {len(oos_score)} stored scores do not line "
            f"up with the {len(rows)} out-of-sample rows of {key}"
        )
    stored = np.asarray(oos_score, dtype=np.float64)[np.searchsorted(rows, last.test_rows)]
    timed = bool(dataset.timeframe)
    return Restored(agent, path, sha, key, timed, dataset.ts[last.test_rows], stored, restored)


def _dataset_of(
    runs: RunStore, root: DataRoot, run: RunRecord, agent: AgentRecord
) -> tuple[str, Dataset]:
    """The dataset ``agent`` trained on, read from ``training_db`` and checked by digest.

    A member's dataset is the run's dataset with the agent's digest. A report_coordinator's is
    stacked from its members' stored out-of-sample scores the way the Mother stacked them for its
    generation; the digest check proves it is the very same.
    """
    digests = {digest: key for key, digest in run.dataset_digests.items()}
    key = digests.get(agent.dataset_digest)
    if key is None and agent.specialty == COORDINATOR:
        return _stacked(runs, root, run, agent)
    if key is None:
        raise ValueError(
            f"agent {agent.agent_id!r} trained on a dataset with digest {agent.dataset_digest!r}, "
            f"which is none of run {run.run_id}'s datasets ({', '.join(sorted(run.dataset_digests))})"
        )
    dataset = _read(root, key)
    if dataset.digest() != agent.dataset_digest:
        raise ValueError(
            f"dataset {key} has digest {dataset.digest()}, but agent {agent.agent_id!r} trained on "
            f"{agent.dataset_digest}: training_db was rebuilt from other data; refusing to score"
        )
    return key, dataset


def _read(root: DataRoot, key: str) -> Dataset:
    from agents.datasets import dataset_path, read_dataset

    specialty, name = key.split("/", 1)
    path = dataset_path(root.home, specialty, name)
    if not path.is_file():
        raise ValueError(
            f"dataset file {path} is missing: `redline data prepare --config FILE` writes it"
        )
    return read_dataset(path)


def _stacked(
    runs: RunStore, root: DataRoot, run: RunRecord, agent: AgentRecord
) -> tuple[str, Dataset]:
    """The coordinator's stack ``stack_g<N>`` (N: the generation it was born and trained in).

    The Mother keeps it in memory only, so it is rebuilt as ``evolution.mother.Mother._stack``
    made it: the ``coordinator_members`` best children (weighted objectives) of every member
    specialty trained on the base series (or on a pooled dataset holding its rows: their scores
    of those rows), among those alive while generation N trained, stacked on the base. A stack already written under ``training_db/report_coordinator/`` is used first.
    """
    from agents.child import read_oos
    from agents.datasets import dataset_path, stacked_dataset, symbol_group
    from cluster.config import EvolveConfig

    generation = agent.generation
    written = f"{COORDINATOR}/stack_g{generation:03d}"
    if dataset_path(root.home, COORDINATOR, f"stack_g{generation:03d}").is_file():
        dataset = _read(root, written)  # a stack the driver wrote: used when it is the same
        if dataset.digest() == agent.dataset_digest:
            return written, dataset
    evolve = EvolveConfig.model_validate(run.config)
    alive = [
        a for a in runs.agents(run.run_id)
        if a.specialty != COORDINATOR and a.generation <= generation and a.status == AgentStatus.OK
        and a.objectives and (a.killed_generation is None or a.killed_generation >= generation)
    ]  # fmt: skip
    by_digest = {digest: key for key, digest in run.dataset_digests.items()}
    # Each member specialty trains on one dataset (a pooled one holds every symbol's rows).
    trained: dict[str, str] = {}
    for member in alive:
        if member.dataset_digest in by_digest:
            trained.setdefault(member.specialty, by_digest[member.dataset_digest])
    datasets: dict[str, Dataset] = {}

    def read(key: str) -> Dataset:
        if key not in datasets:
            datasets[key] = _read(root, key)
        return datasets[key]

    # The base: a member specialty's single-series dataset, technical_analyst's first (the
    # Mother's choice); with pooled members, the first symbol's dataset kept beside the pool.
    bases = sorted(
        (key for key in run.dataset_digests
         if key.split("/", 1)[0] in trained and "_pooled_" not in key),
        key=lambda k: (k.split("/", 1)[0] != "technical_analyst", k),
    )  # fmt: skip
    for base_key in bases:
        base = read(base_key)
        predictions = {}
        for specialty in sorted(trained, key=lambda s: (s != "technical_analyst", s)):
            own = read(trained[specialty])
            group = None
            if trained[specialty].split("/", 1)[1] != base_key.split("/", 1)[1]:  # not its series
                group = symbol_group(own, base)
                if group is None:
                    continue
            ranked = sorted(
                (a for a in alive if a.specialty == specialty),
                key=lambda a: (-float(np.dot(a.objectives, evolve.weights)), a.agent_id),
            )
            for member in ranked[: evolve.coordinator_members]:
                predictions[member.agent_id] = read_oos(
                    root,
                    member.agent_id,
                    member.generation,
                    pooled=None if group is None else (own, group),
                )
        if not predictions:
            continue
        try:
            stacked = stacked_dataset(base, predictions)
        except ValueError:  # members that share no bar: not the stack the Mother built
            continue
        stacked = replace(stacked, specialty=COORDINATOR, name=f"stack_g{generation:03d}")
        if stacked.digest() == agent.dataset_digest:
            return f"{COORDINATOR}/{stacked.name} (stacked on {base_key})", stacked
    raise ValueError(
        f"could not rebuild the stacked dataset of {agent.agent_id!r}: no stack of its members' "
        f"stored scores has digest {agent.dataset_digest}; refusing to score"
    )
