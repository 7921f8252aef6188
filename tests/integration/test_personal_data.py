"""Personal data in the store: free text encrypted at rest with its row and column as
associated data, and bound values kept out of database error messages."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from store.db import Database

ADDRESS = "幸福路88号3栋1203室王秀英"


async def test_failing_statement_does_not_show_bound_values(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    stmt = text("INSERT INTO no_such_table (note, phone) VALUES (:note, :phone)")
    values = {"note": ADDRESS, "phone": "13812345678"}
    with pytest.raises(DBAPIError) as failure:
        async with db.session() as s:
            await s.execute(stmt, values)
    logging.getLogger("gateway").exception("statement failed", exc_info=failure.value)
    shown = str(failure.value) + caplog.text
    assert "no_such_table" in shown
    assert ADDRESS not in shown and "13812345678" not in shown
