"""The RugpullStore contract (the rug-pull detector's answers and the tokens' outcomes) on SQLite
and PostgreSQL. The outcomes are real: the ``is_rugpull`` of Uniswap V2 tokens of ../shared/data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from store.db import Store
from store.errors import NotFoundError
from store.models import RugpullAnswer, RugpullOutcome
from store.records.rugpulls import RugpullAnswerRecord, RugpullOutcomeRecord
from store.rugpulls import OutcomeConflictError, RugpullStore
from tests.store.rows import Clock, clocked, count_rows

VERSION = "3f9a1c2b7d4e"
RUN, AGENT = "r-rugpull", "rd-g000-001"


@pytest.fixture
def rugpulls(store: Store, clock: Clock) -> RugpullStore:
    return clocked(store, clock).rugpulls


@pytest.fixture(scope="module")
def outcomes(shared_data: Path) -> list[bool]:
    """Real outcomes: every 500th token of the file (both kinds among them)."""
    tokens = pd.read_csv(shared_data / "rugpull_uniswapv2_tokens.csv.gz")
    found = [bool(v) for v in tokens["is_rugpull"].iloc[::500]]
    assert True in found and False in found
    return found


def _answer(i: int, probability: float = 0.9, *, agent: str = AGENT) -> RugpullAnswerRecord:
    return RugpullAnswerRecord(f"rp-{i:03d}", VERSION, RUN, agent, probability,
                               probability > 0.5, 0.5)  # fmt: skip


def test_answers_come_back_as_written_stamped_by_the_clock(
    rugpulls: RugpullStore, clock: Clock
) -> None:
    rugpulls.append_answers([_answer(1, 0.93), _answer(2, 0.12)])
    found = rugpulls.answer("rp-002")
    assert found is not None and found.created_at == clock.now
    assert (found.probability, found.is_rugpull, found.threshold) == (0.12, False, 0.5)
    assert (found.run_id, found.agent_id, found.model_version) == (RUN, AGENT, VERSION)
    assert rugpulls.answer("rp-404") is None


def test_a_request_id_names_one_answer(rugpulls: RugpullStore, store: Store) -> None:
    rugpulls.append_answers([_answer(1)])
    with pytest.raises(IntegrityError):
        rugpulls.append_answers([_answer(2), _answer(1, 0.2)])
    assert count_rows(store, RugpullAnswer) == 1  # neither of the second batch


def test_outcomes_are_idempotent_per_request_id(rugpulls: RugpullStore, store: Store) -> None:
    rugpulls.append_answers([_answer(1)])
    first = rugpulls.record_outcome(RugpullOutcomeRecord("rp-001", True, "liquidity pulled"))
    assert not first.duplicate and first.answer == rugpulls.answer("rp-001")
    again = rugpulls.record_outcome(RugpullOutcomeRecord("rp-001", True, "liquidity pulled"))
    assert again.duplicate and again.outcome == first.outcome
    with pytest.raises(OutcomeConflictError, match=r"request_id 'rp-001' already has another "
                                                   r"outcome \(a rug pull, note 'liquidity "
                                                   r"pulled'\)"):  # fmt: skip
        rugpulls.record_outcome(RugpullOutcomeRecord("rp-001", False))
    assert count_rows(store, RugpullOutcome) == 1
    stored = rugpulls.outcome("rp-001")
    assert stored is not None and (stored.is_rugpull, stored.note) == (True, "liquidity pulled")


def test_an_outcome_on_no_answer_is_not_found(rugpulls: RugpullStore, store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"request_id 'rp-404' is not a rug-pull answer"):
        rugpulls.record_outcome(RugpullOutcomeRecord("rp-404", True))
    assert count_rows(store, RugpullOutcome) == 0


def test_labelled_is_a_champions_answers_with_their_outcomes_in_order(
    rugpulls: RugpullStore, clock: Clock, outcomes: list[bool]
) -> None:
    n = len(outcomes)
    rugpulls.append_answers([_answer(i, 0.5 + 0.01 * i) for i in range(n)])
    rugpulls.append_answers([_answer(900, 0.4, agent="rd-other")])
    rugpulls.record_outcome(RugpullOutcomeRecord("rp-900", False))
    for i in reversed(range(1, n)):  # the first answer gets no outcome; the rest in reverse
        clock.tick()
        rugpulls.record_outcome(RugpullOutcomeRecord(f"rp-{i:03d}", outcomes[i]))
    labelled = rugpulls.labelled(RUN, AGENT)
    assert [a.request_id for a, _ in labelled] == [f"rp-{i:03d}" for i in reversed(range(1, n))]
    assert [o for _, o in labelled] == [outcomes[i] for i in reversed(range(1, n))]
    assert [(a.request_id, o) for a, o in rugpulls.labelled(RUN, "rd-other")] == [("rp-900", False)]


def test_a_blank_note_is_no_note(rugpulls: RugpullStore) -> None:
    rugpulls.append_answers([_answer(1)])
    assert RugpullOutcomeRecord("rp-001", True, " ").note is None
    rugpulls.record_outcome(RugpullOutcomeRecord("rp-001", True, ""))
    assert rugpulls.record_outcome(RugpullOutcomeRecord("rp-001", True)).duplicate


def test_records_name_the_bad_field() -> None:
    with pytest.raises(ValueError, match=r"RugpullAnswerRecord.probability must be between 0 "
                                         r"and 1; got 1.5"):  # fmt: skip
        RugpullAnswerRecord("rp-1", VERSION, RUN, AGENT, 1.5, True, 0.5)
    with pytest.raises(ValueError, match=r"RugpullOutcomeRecord.is_rugpull must be True or "
                                         r"False; got 1"):  # fmt: skip
        RugpullOutcomeRecord("rp-1", 1)  # type: ignore[arg-type]
