"""Working-day calendar for mainland China, used for work-order deadlines.

Statutory holidays and 调休 make-up workdays come from `chinese-calendar`; for years it has no
data for (it raises NotImplementedError) the calendar falls back to plain Monday–Friday.

Counting follows the usual rule for time limits (期间开始的当日不计入): the day a work order is
received does not count, so "1 working day" from a Monday ends on Tuesday 23:59:59 local time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

DEFAULT_TZ = "Asia/Shanghai"
_END_OF_DAY = time(23, 59, 59)


def is_working_day(day: date | datetime) -> bool:
    """True if `day` is a working day in mainland China (调休 Saturdays included).

    A datetime is reduced to its calendar date as given; convert it to local time first.
    """
    if isinstance(day, datetime):
        day = day.date()
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def next_working_day(day: date) -> date:
    """The first working day strictly after `day`."""
    day += timedelta(days=1)
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def add_working_days(start: datetime, days: int, tz: str = DEFAULT_TZ) -> datetime:
    """Deadline `days` working days after `start`: 23:59:59 local time of the Nth working day.

    `start` is read in UTC when it is naive (the store's convention). The start day itself is
    not counted; `days == 0` means the end of the start day. The result is timezone-aware UTC.
    """
    if days < 0:
        raise ValueError("days must be >= 0")
    zone = ZoneInfo(tz)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    day = start.astimezone(zone).date()
    for _ in range(days):
        day = next_working_day(day)
    return datetime.combine(day, _END_OF_DAY, tzinfo=zone).astimezone(UTC)


def working_days_between(start: date, end: date) -> int:
    """Number of working days in the half-open range (start, end]; negative if end < start."""
    if end < start:
        return -working_days_between(end, start)
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += is_working_day(day)
    return count
