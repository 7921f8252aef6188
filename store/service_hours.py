"""When agents are on duty: `settings.service_hours` in `settings.timezone`.

Format: `"mon-fri 08:30-17:30; sat-sun 09:00-17:00"` — `;`-separated entries, each a day or day
range (mon..sun, ranges may wrap: `sat-mon`) and one or more `HH:MM-HH:MM` windows separated by
commas. `24/7` or `always` means always open; an empty string means never open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ServiceHoursError(ValueError):
    """The service_hours setting cannot be parsed."""


@dataclass(frozen=True)
class ServiceHours:
    """Opening windows per weekday (0 = Monday) in one timezone."""

    windows: dict[int, tuple[tuple[time, time], ...]]
    tz: ZoneInfo
    always: bool = False

    @classmethod
    def parse(cls, spec: str, timezone: str = "Asia/Shanghai") -> ServiceHours:
        """Parse the setting; raises ServiceHoursError with the offending part."""
        tz = ZoneInfo(timezone)
        spec = (spec or "").strip().lower()
        if spec in ("24/7", "always"):
            return cls({}, tz, always=True)
        windows: dict[int, list[tuple[time, time]]] = {d: [] for d in range(7)}
        for entry in filter(None, (e.strip() for e in spec.split(";"))):
            try:
                days_part, ranges_part = entry.split(None, 1)
            except ValueError as exc:
                raise ServiceHoursError(f"expected 'days HH:MM-HH:MM' in {entry!r}") from exc
            days = _days(days_part, entry)
            for rng in filter(None, (r.strip() for r in ranges_part.split(","))):
                start, end = _range(rng, entry)
                for d in days:
                    windows[d].append((start, end))
        return cls({d: tuple(sorted(w)) for d, w in windows.items()}, tz)

    def in_service(self, now: datetime) -> bool:
        """True if `now` (aware) falls inside an opening window."""
        if self.always:
            return True
        local = _aware(now).astimezone(self.tz)
        t = local.time().replace(tzinfo=None)
        return any(s <= t < e for s, e in self.windows.get(local.weekday(), ()))

    def next_opening(self, now: datetime) -> datetime | None:
        """The next moment service opens (aware, in the service timezone); `now` if open.

        None if the calendar has no opening window at all.
        """
        if self.in_service(now):
            return _aware(now).astimezone(self.tz)
        local = _aware(now).astimezone(self.tz)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            for start, _end in self.windows.get(day.weekday(), ()):
                candidate = datetime.combine(day, start, tzinfo=self.tz)
                if candidate > local:
                    return candidate
        return None


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _days(part: str, entry: str) -> list[int]:
    if "-" in part:
        first, last = part.split("-", 1)
        if first not in DAYS or last not in DAYS:
            raise ServiceHoursError(f"unknown day in {entry!r}")
        a, b = DAYS.index(first), DAYS.index(last)
        return [(a + i) % 7 for i in range((b - a) % 7 + 1)]
    if part not in DAYS:
        raise ServiceHoursError(f"unknown day in {entry!r}")
    return [DAYS.index(part)]


def _range(rng: str, entry: str) -> tuple[time, time]:
    try:
        a, b = rng.split("-", 1)
        start, end = time.fromisoformat(a.strip()), _end_time(b.strip())
    except ValueError as exc:
        raise ServiceHoursError(f"bad time range {rng!r} in {entry!r}") from exc
    if end <= start:
        raise ServiceHoursError(f"end before start in {rng!r}")
    return start, end


def _end_time(text: str) -> time:
    return time.max if text == "24:00" else time.fromisoformat(text)


def in_service(now: datetime, spec: str, timezone: str = "Asia/Shanghai") -> bool:
    """Convenience: parse `spec` and test `now`."""
    return ServiceHours.parse(spec, timezone).in_service(now)


def next_opening(now: datetime, spec: str, timezone: str = "Asia/Shanghai") -> datetime | None:
    """Convenience: parse `spec` and find the next opening after `now`."""
    return ServiceHours.parse(spec, timezone).next_opening(now)
