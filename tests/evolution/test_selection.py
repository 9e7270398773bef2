"""Selection, kill rule, elites, hall of fame, breeding and lineage on hand-made populations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agents.genome import ChoiceGene, FloatGene, Genome, GenomeSpace, IntGene
from evolution.lineage import LineageRecord, family_tree, new_agent_id, parse_agent_id
from evolution.operators import OperatorRecord
from evolution.selection import (
    Birth,
    HallOfFame,
    KillDecision,
    KillReason,
    KillRule,
    Scored,
    breed,
    decide_kills,
    elites,
    nsga2_rank,
    select_parents,
)

SPACE = GenomeSpace(
    "technical_analyst",
    (
        IntGene("lookback", 8, 128),
        ChoiceGene("feature_set", ("price", "momentum", "volatility")),
        IntGene("hidden", 4, 64),
        FloatGene("dropout", 0.0, 0.5),
        FloatGene("lr", 1e-4, 1e-1, log=True),
    ),
)
GENOMES = [SPACE.sample(np.random.default_rng(seed)) for seed in range(10)]


def scored(
    agent_id: str, objectives: tuple[float, ...], hit_rate: float | None = None, **kw: object
) -> Scored:
    genome = GENOMES[int(agent_id[1:]) % len(GENOMES)]
    hit = objectives[-1] if hit_rate is None else hit_rate
    return Scored(agent_id, genome, objectives, hit, **kw)  # type: ignore[arg-type]


# Six points in three maximized objectives, no ties within an objective (DEAP re-sorts one list
# objective after objective, so ties would be ordered by the previous objective).
#   A (4, 0, 1)  B (0, 4, 0.5)  C (0.5, 1, 4)  D (2, 2, 2)  G (3, 2.5, 0.75)  E (1, 1.5, 1.5)
# By hand: A, B, C are each the best in one objective; D and G are dominated by none; E is
# dominated by D. Fronts: [A B C D G], [E].
# Crowding in front 0; norm = 3 objectives * the objective's range in the front:
#   obj0 order B C D G A, range 0..4 (norm 12):    D += (G - C) 2.5/12, G += (A - D) 2/12
#   obj1 order A C D G B, range 0..4 (norm 12):    D += (G - C) 1.5/12, G += (B - D) 2/12
#   obj2 order B G A D C, range 0.5..4 (norm 10.5): D += (C - A) 3/10.5, G += (A - B) 0.5/10.5
# A, B, C are extremes (inf), D = 4/12 + 3/10.5, G = 4/12 + 0.5/10.5; E alone in its front: inf.
SIX = [
    scored("p0", (4.0, 0.0, 1.0)),  # A
    scored("p1", (0.0, 4.0, 0.5)),  # B
    scored("p2", (0.5, 1.0, 4.0)),  # C
    scored("p3", (2.0, 2.0, 2.0)),  # D
    scored("p4", (3.0, 2.5, 0.75)),  # G
    scored("p5", (1.0, 1.5, 1.5)),  # E
]


def test_nsga2_rank_matches_the_hand_computed_fronts_and_crowding() -> None:
    ranks = nsga2_rank(SIX)
    assert [front for front, _ in ranks] == [0, 0, 0, 0, 0, 1]
    assert [crowding for _, crowding in ranks] == pytest.approx(
        [math.inf, math.inf, math.inf, 4 / 12 + 3 / 10.5, 4 / 12 + 0.5 / 10.5, math.inf]
    )


def test_nsga2_selection_keeps_the_front_then_the_least_crowded() -> None:
    rng = np.random.default_rng(0)
    ids = lambda k: [s.agent_id for s in select_parents(SIX, k, rng)]  # noqa: E731
    assert ids(3) == ["p0", "p1", "p2"]
    assert ids(4) == ["p0", "p1", "p2", "p3"]  # D (0.619) is less crowded than G (0.381)
    assert ids(5) == ["p0", "p1", "p2", "p3", "p4"]
    assert ids(6) == ["p0", "p1", "p2", "p3", "p4", "p5"]
    assert ids(20) == ids(6)  # each child at most once


def test_failed_children_are_ranked_after_the_last_front_and_never_selected() -> None:
    population = [*SIX, scored("p6", (9.0, 9.0, 9.0), failed=True, reason="loss is nan")]
    assert nsga2_rank(population)[-1] == (2, 0.0)
    rng = np.random.default_rng(0)
    assert "p6" not in [s.agent_id for s in select_parents(population, 10, rng)]
    assert "p6" not in [
        s.agent_id for s in select_parents(population, 50, rng, method="tournament")
    ]
    assert select_parents([population[-1]], 3, rng) == []


def test_tournament_selection_is_deterministic_and_favours_the_weighted_score() -> None:
    def pick(seed: int) -> list[str]:
        chosen = select_parents(SIX, 60, np.random.default_rng(seed), method="tournament")
        return [s.agent_id for s in chosen]

    assert pick(1) == pick(1)
    assert pick(1) != pick(2)
    # Weighted scores (1, 0.5, 1): A, C, D, G 5; E 3.25; B 2.5. B wins a tournament of 3 only
    # when all three aspirants are B (1 in 216).
    chosen = pick(1)
    assert chosen.count("p1") < 3
    assert sum(chosen.count(agent) for agent in ("p0", "p2", "p3", "p4")) > 45
    with pytest.raises(ValueError, match="method must be one of nsga2, tournament; got 'roulette'"):
        select_parents(SIX, 2, np.random.default_rng(0), method="roulette")


# A hand-made population, objectives (sharpe, max_drawdown, hit_rate), weights (1, 0.5, 1):
#   k1 (2.0, -0.10, 0.60) score 2.55   front 0                         elite
#   k2 (1.5, -0.20, 0.55) score 1.95   front 1 (dominated by k1)        elite
#   k3 (1.0, -0.30, 0.47) score 1.32   front 2                         hit rate 0.47 < 0.5
#   k4 (0.2, -0.50, 0.51) score 0.46   front 2 (not the last)          survives
#   k5 (0.1, -0.60, 0.50) score 0.30   front 3 (dominated by k4): last, and 0.30 <= 0.675
#   k6 failed ("loss is nan")
#   k7 (1.2, -0.05, 0.52) score 1.695  front 0 (best drawdown)
# The 25% quantile of the usable scores [0.3, 0.46, 1.32, 1.695, 1.95, 2.55] (linear) is
# 0.46 + 0.25 * (1.32 - 0.46) = 0.675.
KILL_POPULATION = [
    scored("k1", (2.0, -0.10, 0.60)),
    scored("k2", (1.5, -0.20, 0.55)),
    scored("k3", (1.0, -0.30, 0.47)),
    scored("k4", (0.2, -0.50, 0.51)),
    scored("k5", (0.1, -0.60, 0.50)),
    scored("k6", (math.nan, math.nan, math.nan), failed=True, reason="loss is nan"),
    scored("k7", (1.2, -0.05, 0.52)),
]


def test_kill_decisions_with_their_reasons() -> None:
    assert [front for front, _ in nsga2_rank(KILL_POPULATION)] == [0, 1, 2, 2, 3, 4, 0]
    assert decide_kills(KILL_POPULATION, KillRule()) == [
        KillDecision("k3", KillReason.LOW_HIT_RATE, "out-of-sample hit rate 0.47 < 0.5"),
        KillDecision(
            "k5",
            KillReason.DOMINATED,
            "in the last non-dominated front (4 of 4) and weighted score 0.3 <= 0.675, "
            "the bottom 25% quantile",
        ),
        KillDecision("k6", KillReason.FAILED, "child failed: loss is nan"),
    ]


def test_kill_rule_thresholds_come_from_the_rule() -> None:
    strict = KillRule(min_hit_rate=0.52, bottom_quantile=0.0)
    decisions = {d.agent_id: d for d in decide_kills(KILL_POPULATION, strict)}
    assert sorted(decisions) == ["k3", "k4", "k5", "k6"]  # k7 (0.52) passes; k1, k2 are elites
    assert decisions["k4"].detail == "out-of-sample hit rate 0.51 < 0.52"
    assert decisions["k5"].reason is KillReason.LOW_HIT_RATE


def test_elites_survive_a_population_that_misses_the_hit_rate_bar() -> None:
    population = [scored(f"e{i}", (0.1 * i, -0.2, 0.45), hit_rate=0.45) for i in range(5)]
    decisions = decide_kills(population, KillRule(protect_elites=2))
    assert [d.agent_id for d in decisions] == ["e0", "e1", "e2"]
    assert {d.reason for d in decisions} == {KillReason.LOW_HIT_RATE}
    assert [s.agent_id for s in elites(population, 2)] == ["e4", "e3"]
    # Failed is failed, elite or not; an objective that is not finite counts as failed.
    broken = [scored("x1", (math.inf, 0.0, 0.6)), scored("x2", (1.0, 0.0, 0.6), failed=True)]
    assert decide_kills(broken, KillRule(protect_elites=5)) == [
        KillDecision("x1", KillReason.FAILED, "objective 1 of 3 is inf"),
        KillDecision("x2", KillReason.FAILED, "child failed"),
    ]


def test_a_lone_non_dominated_front_is_never_killed_as_dominated() -> None:
    population = SIX[:5]  # one front: nobody is dominated, even the lowest weighted score
    assert decide_kills(population, KillRule(min_hit_rate=0.0, protect_elites=0)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_hit_rate": 1.5}, r"min_hit_rate must be in \[0, 1\]; got 1.5"),
        ({"bottom_quantile": -0.1}, r"bottom_quantile must be in \[0, 1\]; got -0.1"),
        ({"protect_elites": -1}, "protect_elites must be >= 0; got -1"),
    ],
)
def test_kill_rule_rejects_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KillRule(**kwargs)  # type: ignore[arg-type]


def test_duplicate_agent_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="agent_id must be unique in a population; 'p0' repeats"):
        decide_kills([SIX[0], SIX[0]])


def test_hall_of_fame_keeps_the_best_ever_and_round_trips_as_json() -> None:
    first = [scored(f"h{i}", (x, 0.0, 0.0)) for i, x in enumerate((1.0, 2.0, 3.0, 2.5))]
    hall = HallOfFame(maxsize=3).update(first, generation=0)
    assert [(e.agent_id, e.score) for e in hall.entries] == [("h2", 3.0), ("h3", 2.5), ("h1", 2.0)]
    later = [scored("q1", (2.75, 0.0, 0.0)), scored("q2", (3.0, 0.0, 0.0))]
    hall = hall.update(later, generation=1)
    # q2 ties h2: the one already in the hall stays ahead.
    assert [(e.agent_id, e.generation) for e in hall.entries] == [("h2", 0), ("q2", 1), ("q1", 1)]
    assert hall.best is not None and hall.best.agent_id == "h2"
    assert hall.update([first[2], scored("h9", (9.0, 0.0, 0.0), failed=True)], 2) == hall
    restored = HallOfFame.from_dict(json.loads(json.dumps(hall.to_dict())))
    assert restored == hall
    assert SPACE.validate(Genome.from_json(restored.entries[1].genome_json)) == later[1].genome


def test_breed_is_deterministic_within_bounds_and_records_its_lineage() -> None:
    parents = SIX[:4]

    def births(seed: int) -> list[Birth]:
        return breed(parents, 7, SPACE, np.random.default_rng(seed), cx_prob=0.7)

    first = births(5)
    assert first == births(5)
    assert first != births(6)
    assert len(first) == 7
    parent_ids = {p.agent_id for p in parents}
    digests = {p.genome.digest() for p in parents}
    for birth in first:
        assert SPACE.validate(birth.genome) == birth.genome
        assert set(birth.parents) <= parent_ids and 1 <= len(birth.parents) <= 2
        names = [OperatorRecord.parse(text).name for text in birth.operators]
        crossed = len(birth.parents) == 2
        assert names[0] == ("cxSimulatedBinaryBounded" if crossed else "mutPolynomialBounded")
        assert set(names[1:]) <= {"mutPolynomialBounded"}
        assert birth.genome.digest() not in digests  # distinct from parents and siblings
        digests.add(birth.genome.digest())


def test_breed_crossover_probability_decides_single_or_two_parents() -> None:
    always = breed(SIX[:4], 6, SPACE, np.random.default_rng(1), cx_prob=1.0)
    assert all(len(b.parents) == 2 and b.parents[0] != b.parents[1] for b in always)
    assert [b.parents[0] for b in always[0::2]] == [b.parents[1] for b in always[1::2]]
    never = breed(SIX[:4], 6, SPACE, np.random.default_rng(1), cx_prob=0.0)
    assert all(len(b.parents) == 1 for b in never)
    assert all(b.operators[0].startswith("mutPolynomialBounded(eta=20,indpb=0.2)[") for b in never)
    alone = breed(SIX[:1], 3, SPACE, np.random.default_rng(1), cx_prob=1.0)
    assert [b.parents for b in alone] == [("p0",)] * 3


def test_breed_rejects_impossible_requests() -> None:
    rng = np.random.default_rng(0)
    assert breed([], 0, SPACE, rng) == []
    with pytest.raises(ValueError, match="parents must not be empty to breed 2 children; got none"):
        breed([], 2, SPACE, rng)
    with pytest.raises(ValueError, match=r"cx_prob must be in \[0, 1\]; got 1.2"):
        breed(SIX, 2, SPACE, rng, cx_prob=1.2)
    other = GenomeSpace("volume_hunter", SPACE.genes)
    with pytest.raises(ValueError, match="genome is of 'technical_analyst', not 'volume_hunter'"):
        breed(SIX, 2, other, rng)


# ---------------------------------------------------------------------------------------------
# Lineage


def record(agent_id: str, parents: tuple[str, ...] = (), seed: int = 0) -> LineageRecord:
    _, generation, _ = parse_agent_id(agent_id)
    operators = ("mutPolynomialBounded(eta=20,indpb=0.2)[lr]",) if parents else ()
    return LineageRecord(agent_id, generation, "technical_analyst", "{}", parents, operators, seed)


# Generation 0: ta-g000-000..003. Generation 1: 000 <- (g0-000, g0-001), 001 <- (g0-002),
# 002 <- (g0-001, g0-003). Generation 2: 000 <- (g1-000, g1-002), and 001 <- (g1-001, g0-003): an
# elite of generation 0 still breeding in generation 2.
LINEAGE = [
    record("ta-g000-000"),
    record("ta-g000-001"),
    record("ta-g000-002"),
    record("ta-g000-003"),
    record("ta-g001-000", ("ta-g000-000", "ta-g000-001")),
    record("ta-g001-001", ("ta-g000-002",)),
    record("ta-g001-002", ("ta-g000-001", "ta-g000-003")),
    record("ta-g002-000", ("ta-g001-000", "ta-g001-002")),
    record("ta-g002-001", ("ta-g001-001", "ta-g000-003")),
]


def test_family_tree_goes_back_to_generation_zero_each_ancestor_once_nearest_first() -> None:
    tree = [r.agent_id for r in family_tree(reversed(LINEAGE), "ta-g002-000")]
    assert tree == [
        "ta-g002-000",
        "ta-g001-000",
        "ta-g001-002",
        "ta-g000-000",
        "ta-g000-001",  # shared by both parents, listed once
        "ta-g000-003",
    ]
    tree = [r.agent_id for r in family_tree(LINEAGE, "ta-g002-001")]
    assert tree == ["ta-g002-001", "ta-g001-001", "ta-g000-003", "ta-g000-002"]
    assert family_tree(LINEAGE, "ta-g000-002") == [LINEAGE[2]]


def test_family_tree_errors_and_missing_ancestors(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(KeyError, match="agent_id 'ta-g009-000' is not in the lineage records"):
        family_tree(LINEAGE, "ta-g009-000")
    with pytest.raises(ValueError, match="agent_id 'ta-g000-000' has two different lineage"):
        family_tree([*LINEAGE, record("ta-g000-000", seed=5)], "ta-g002-000")
    partial = [r for r in LINEAGE if r.agent_id != "ta-g001-001"]
    tree = [r.agent_id for r in family_tree(partial, "ta-g002-001")]
    assert tree == ["ta-g002-001", "ta-g000-003"]
    assert "no record for ancestor ta-g001-001" in caplog.text


def test_agent_ids_are_readable_and_deterministic() -> None:
    assert new_agent_id("technical_analyst", 2, 3) == "ta-g002-003"
    assert new_agent_id("report_coordinator", 12, 140) == "rc-g012-140"
    assert parse_agent_id("ww-g001-007") == ("whale_watcher", 1, 7)
    prefixes = {
        new_agent_id(name, 0, 0)[:2]
        for name in (
            "technical_analyst",
            "volume_hunter",
            "market_scanner",
            "whale_watcher",
            "sentiment_scout",
            "rugpull_detector",
            "report_coordinator",
        )
    }
    assert prefixes == {"ta", "vh", "ms", "ww", "ss", "rd", "rc"}
    with pytest.raises(
        ValueError,
        match=r"specialty must be one of technical_analyst, volume_hunter, .*; got 'oracle'",
    ):
        new_agent_id("oracle", 0, 0)
    with pytest.raises(ValueError, match="generation must be a non-negative integer; got -1"):
        new_agent_id("technical_analyst", -1, 0)
    with pytest.raises(ValueError, match="agent_id must look like 'ta-g002-003'; got 'ta-7'"):
        parse_agent_id("ta-7")
