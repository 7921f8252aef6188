"""The store's one error tree: every error class the store raises sits under StoreError in the
branch the console maps to an HTTP status, and the old import paths and builtin bases still
work for existing callers."""

from __future__ import annotations

import pytest

from store import agents, assignment, bus, categories, errors, handoffs, lifecycle, work_orders


@pytest.mark.parametrize(
    ("cls", "branch", "builtin"),
    [
        (agents.AgentError, errors.Invalid, ValueError),
        (work_orders.InvalidWorkOrder, errors.Invalid, ValueError),
        (categories.TaxonomyError, errors.Invalid, ValueError),
        (lifecycle.InvalidTransition, errors.Conflict, ValueError),
        (handoffs.InvalidHandoffTransition, errors.Conflict, ValueError),
        (assignment.HandoffTaken, errors.Conflict, RuntimeError),
        (bus.LockTimeout, errors.Busy, RuntimeError),
    ],
)
def test_each_store_error_has_one_branch(cls, branch, builtin) -> None:
    assert issubclass(cls, branch) and issubclass(cls, errors.StoreError)
    assert issubclass(cls, builtin)


def test_one_idea_one_name_for_transitions() -> None:
    assert handoffs.InvalidHandoffTransition is lifecycle.InvalidTransition
    exc = errors.InvalidTransition("received", "closed")
    assert (exc.from_status, exc.to_status) == (exc.from_state, exc.to_state)


async def test_handoff_machine_raises_the_shared_transition_error(db) -> None:
    from store import conversations

    async with db.session() as session:
        conv = await conversations.ensure_conversation(session, "rest", "errors-1")
        handoff = await handoffs.request(session, conv, "request_human")
        with pytest.raises(errors.Conflict) as caught:
            await handoffs.transition(session, handoff, "resolved", "test")
    assert "hand-off cannot go from pending to resolved" in str(caught.value)
