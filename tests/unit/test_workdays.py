"""Working-day deadlines: statutory holidays, 调休 make-up days, fallback years."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from store.workdays import add_working_days, is_working_day, working_days_between

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(dt: datetime) -> datetime:
    return dt.astimezone(SHANGHAI)


def test_weekday_and_weekend() -> None:
    assert is_working_day(date(2025, 3, 5))  # Wednesday
    assert not is_working_day(date(2025, 3, 8))  # Saturday


def test_national_day_holiday_and_make_up_saturday() -> None:
    assert not is_working_day(date(2025, 10, 1))
    assert not is_working_day(date(2025, 10, 8))  # 中秋 joined to 国庆 in 2025
    assert is_working_day(date(2025, 9, 28))  # Sunday, 调休 workday
    assert is_working_day(date(2025, 10, 11))  # Saturday, 调休 workday


def test_deadline_across_national_day_lands_after_the_holiday() -> None:
    # Received Tuesday 30 Sep 2025, 10:00 Beijing time; 1–8 Oct are holidays.
    start = datetime(2025, 9, 30, 10, 0, tzinfo=SHANGHAI)
    due = add_working_days(start, 1)
    assert due.tzinfo is not None and due.utcoffset().total_seconds() == 0
    assert local(due) == datetime(2025, 10, 9, 23, 59, 59, tzinfo=SHANGHAI)
    assert local(add_working_days(start, 3)).date() == date(2025, 10, 11)  # 调休 Saturday counts


def test_deadline_is_end_of_day_local_returned_in_utc() -> None:
    start = datetime(2025, 3, 3, 9, 0, tzinfo=SHANGHAI)  # Monday
    due = add_working_days(start, 2)
    assert due == datetime(2025, 3, 5, 15, 59, 59, tzinfo=UTC)  # Wed 23:59:59 +08:00


def test_start_is_read_in_local_time() -> None:
    # Friday 20:00 UTC is already Saturday 04:00 in Shanghai: next working day is Monday.
    start = datetime(2025, 3, 7, 20, 0, tzinfo=UTC)
    assert local(add_working_days(start, 1)).date() == date(2025, 3, 10)


def test_naive_start_is_taken_as_utc() -> None:
    naive = datetime(2025, 3, 7, 20, 0)
    assert add_working_days(naive, 1) == add_working_days(naive.replace(tzinfo=UTC), 1)


def test_weekend_start_counts_from_next_working_day() -> None:
    start = datetime(2025, 3, 8, 12, 0, tzinfo=SHANGHAI)  # Saturday
    assert local(add_working_days(start, 1)).date() == date(2025, 3, 10)
    assert local(add_working_days(start, 5)).date() == date(2025, 3, 14)


def test_zero_days_is_end_of_start_day_and_negative_rejected() -> None:
    start = datetime(2025, 3, 5, 9, 0, tzinfo=SHANGHAI)
    assert local(add_working_days(start, 0)) == datetime(2025, 3, 5, 23, 59, 59, tzinfo=SHANGHAI)
    with pytest.raises(ValueError):
        add_working_days(start, -1)


def test_unknown_year_falls_back_to_monday_to_friday() -> None:
    # chinese-calendar has no data this far ahead; 1 Oct 2099 is a Thursday.
    assert is_working_day(date(2099, 10, 1))
    assert not is_working_day(date(2099, 10, 3))  # Saturday
    start = datetime(2099, 10, 2, 9, 0, tzinfo=SHANGHAI)  # Friday
    assert local(add_working_days(start, 1)).date() == date(2099, 10, 5)


def test_working_days_between() -> None:
    assert working_days_between(date(2025, 9, 30), date(2025, 10, 9)) == 1
    assert working_days_between(date(2025, 10, 9), date(2025, 9, 30)) == -1
    assert working_days_between(date(2025, 3, 3), date(2025, 3, 3)) == 0
