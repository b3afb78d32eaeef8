"""Five-field cron expressions (minute hour day-of-month month day-of-week).

Parsed once into sets of allowed values so matching a minute is five set
look-ups. Vixie-cron semantics: when both day fields are restricted a day
matches if either does. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}

# Each field: its name, lowest and highest value, and value names.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message names the field."""


def _value(token: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    lowered = token.lower()
    if lowered in names:
        return names[lowered]
    if not (token.isascii() and token.isdigit()):
        raise CronError(f"{field}: {token!r} is not a number")
    number = int(token)
    if not low <= number <= high:
        raise CronError(f"{field}: {number} is outside {low}-{high}")
    return number


def _parse_field(
    text: str, field: str, low: int, high: int, names: dict[str, int]
) -> frozenset[int]:
    allowed: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise CronError(f"{field}: bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _value(first, field, low, high, names)
            stop = _value(last, field, low, high, names)
            if start > stop:
                raise CronError(f"{field}: range {base!r} runs backwards")
        else:
            start = _value(base, field, low, high, names)
            stop = high if step_text else start
        allowed.update(range(start, stop + 1, step))
    return frozenset(allowed)


@dataclass(frozen=True)
class CronExpression:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday
    any_day_of_month: bool
    any_day_of_week: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        parts = text.split()
        if len(parts) != 5:
            raise CronError(f"expected 5 fields, got {len(parts)}")
        sets = [
            _parse_field(part, name, low, high, names)
            for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
        ]
        days_of_week = frozenset(d % 7 for d in sets[4])
        # crontab(5): a day field is unrestricted when it starts with "*" (so */2 too).
        return cls(sets[0], sets[1], sets[2], sets[3], days_of_week,
                   parts[2].startswith("*"), parts[4].startswith("*"))

    def matches(self, moment: datetime) -> bool:
        """True when the wall-clock minute of `moment` is a firing minute."""
        if (moment.minute not in self.minutes or moment.hour not in self.hours
                or moment.month not in self.months):
            return False
        dom = moment.day in self.days_of_month
        dow = moment.isoweekday() % 7 in self.days_of_week
        if self.any_day_of_month or self.any_day_of_week:
            return dom and dow
        return dom or dow
