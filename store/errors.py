"""Every error the store raises, in one tree; callers catch a branch, not a module's class.

    StoreError
    ├── NotFound              a row asked for does not exist                       → 404
    ├── Conflict              the current state does not allow the change          → 409
    │   ├── InvalidTransition     a hand-off or work order cannot take that step
    │   │                         (also named handoffs.InvalidHandoffTransition and
    │   │                         lifecycle.InvalidTransition)
    │   └── HandoffTaken          another agent has the hand-off / it is closed
    ├── Invalid               bad input; nothing was written                       → 400
    │   ├── AgentError            console user data (name, role, password)
    │   ├── InvalidWorkOrder      work-order fields (message is citizen-safe)
    │   └── TaxonomyError         the categories file
    └── Busy                  a lock or backend was not free in time; retry later  → 503
        └── LockTimeout           a bus lock

The arrows are what the console answers (bot/console/errors.py). Messages of `Invalid` and
`NotFound` raised for people are short simplified Chinese and may be shown as they are.
Branches keep their old builtin bases (`Invalid` is a ValueError, `Busy` a RuntimeError), so
older `except ValueError` code still catches them. Errors copy plain values, never ORM rows:
a row expires when the transaction rolls back.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class NotFound(StoreError, LookupError):
    """A row asked for does not exist."""


class Conflict(StoreError):
    """The current state does not allow the change; nothing was written."""


class Invalid(StoreError, ValueError):
    """Bad input; nothing was written."""


class Busy(StoreError, RuntimeError):
    """A lock or a backend was not available in time; the caller may retry."""


class InvalidTransition(Conflict, ValueError):
    """A state machine (hand-off or work order) does not allow `from_state → to_state`."""

    def __init__(self, from_state: str, to_state: str, subject: str = "work order") -> None:
        super().__init__(f"{subject} cannot go from {from_state} to {to_state}")
        self.subject = subject
        self.from_state = from_state
        self.to_state = to_state

    @property
    def from_status(self) -> str:
        """The work-order spelling of `from_state`."""
        return self.from_state

    @property
    def to_status(self) -> str:
        """The work-order spelling of `to_state`."""
        return self.to_state


class HandoffTaken(Conflict, RuntimeError):
    """Another agent already owns this hand-off (or it is no longer open)."""

    def __init__(self, public_id: str, state: str) -> None:
        super().__init__(f"hand-off {public_id} is {state}")
        self.public_id = public_id
        self.state = state


class AgentError(Invalid):
    """Bad input when creating or changing a console user (duplicate name, weak password,
    unknown role)."""


class InvalidWorkOrder(Invalid):
    """The data given for a new work order is not acceptable (message is citizen-safe)."""


class TaxonomyError(Invalid):
    """The taxonomy file is malformed or inconsistent."""


class LockTimeout(Busy):
    """A lock could not be taken in time."""
