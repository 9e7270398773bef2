"""Lineage: every child's parents, operators and seed, so a family tree is a query.

Agent ids are readable and deterministic: ``<prefix>-g<generation>-<index>`` (the prefix is the
specialty's ``Specialty.prefix``), e.g. ``ta-g002-003`` for the fourth technical_analyst child born
in generation 2. They are unique within a run (the run id scopes them in the database), and the
same root seed gives the same ids.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from agents.specialties import get_specialty, specialty_of_prefix

logger = logging.getLogger(__name__)

_AGENT_ID = re.compile(r"^(?P<prefix>[a-z]{2})-g(?P<generation>\d{3,})-(?P<index>\d{3,})$")


def new_agent_id(specialty: str, generation: int, index: int) -> str:
    """``ta-g002-003``: specialty prefix, generation and index, zero-padded to three digits."""
    prefix = get_specialty(specialty).prefix  # raises naming the known specialties
    for name, value in (("generation", generation), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
    return f"{prefix}-g{generation:03d}-{index:03d}"


def parse_agent_id(agent_id: str) -> tuple[str, int, int]:
    """(specialty, generation, index) of an id made by ``new_agent_id``."""
    match = _AGENT_ID.match(agent_id)
    specialty = specialty_of_prefix(match["prefix"]) if match is not None else None
    if match is None or specialty is None:
        raise ValueError(f"agent_id must look like 'ta-g002-003'; got {agent_id!r}")
    return specialty.name, int(match["generation"]), int(match["index"])


@dataclass(frozen=True)
class LineageRecord:
    """One child's birth certificate: who, when, from whom, by which operators, with which seed.

    ``parents`` is empty for generation 0 (sampled from the genome space), except a child carried
    over from an earlier run (operators ``("ancestor",)``: its parent is that run's agent, which
    these records may not hold); its first entry is the parent the operator records compare the
    child with. ``operators`` are the strings of
    ``evolution.operators.OperatorRecord`` (e.g. ``mutPolynomialBounded(eta=20,indpb=0.2)[lr]``).
    """

    agent_id: str
    generation: int
    specialty: str
    genome_json: str
    parents: tuple[str, ...]
    operators: tuple[str, ...]
    seed: int


def family_tree(records: Iterable[LineageRecord], agent_id: str) -> list[LineageRecord]:
    """The agent's record, then its ancestors back to generation 0, each once, nearest first.

    Nearest first means by generation, latest first (an elite that outlived its generation can be
    the parent of a much younger child); within a generation, in order of discovery (breadth first,
    parents in the order they are listed). An ancestor missing from ``records`` is logged and its
    branch ends there.
    """
    by_id: dict[str, LineageRecord] = {}
    for record in records:
        known = by_id.setdefault(record.agent_id, record)
        if known != record:
            raise ValueError(
                f"agent_id {record.agent_id!r} has two different lineage records: {known} "
                f"and {record}"
            )
    if agent_id not in by_id:
        raise KeyError(f"agent_id {agent_id!r} is not in the lineage records")
    order: list[LineageRecord] = [by_id[agent_id]]
    seen = {agent_id}
    cursor = 0
    while cursor < len(order):
        for parent in order[cursor].parents:
            if parent in seen:
                continue
            seen.add(parent)
            if parent not in by_id:
                logger.warning("lineage of %s: no record for ancestor %s", agent_id, parent)
                continue
            order.append(by_id[parent])
        cursor += 1
    head, ancestors = order[0], order[1:]
    discovery = {record.agent_id: position for position, record in enumerate(ancestors)}
    ancestors.sort(key=lambda record: (-record.generation, discovery[record.agent_id]))
    return [head, *ancestors]
