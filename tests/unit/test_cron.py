"""Five-field cron expressions: parsing into sets, matching a minute, errors naming the field."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.cron import CronError, CronExpression

ALL_MINUTES = frozenset(range(60))
ALL_HOURS = frozenset(range(24))
ALL_DAYS = frozenset(range(1, 32))
ALL_MONTHS = frozenset(range(1, 13))
ALL_WEEKDAYS = frozenset(range(7))



def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A moment as the evaluator passes it: aware, in the schedule's zone (here UTC)."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# 2024-01-01 is a Monday.
MONDAY_1ST = at(2024, 1, 1, 0, 0)
WEDNESDAY_3RD = at(2024, 1, 3, 0, 0)
SUNDAY_7TH = at(2024, 1, 7, 0, 0)
MONDAY_8TH = at(2024, 1, 8, 0, 0)
FRIDAY_15TH = at(2024, 3, 15, 0, 0)


# --- parsing -----------------------------------------------------------------------------


def test_every_minute() -> None:
    cron = CronExpression.parse("* * * * *")
    assert cron.minutes == ALL_MINUTES
    assert cron.hours == ALL_HOURS
    assert cron.days_of_month == ALL_DAYS
    assert cron.months == ALL_MONTHS
    assert cron.days_of_week == ALL_WEEKDAYS
    assert cron.any_day_of_month
    assert cron.any_day_of_week


@pytest.mark.parametrize(
    ("expression", "attribute", "expected"),
    [
        pytest.param("0 * * * *", "minutes", {0}, id="single"),
        pytest.param("59 * * * *", "minutes", {59}, id="highest-minute"),
        pytest.param("07 * * * *", "minutes", {7}, id="leading-zero"),
        pytest.param("0,15,45 * * * *", "minutes", {0, 15, 45}, id="list"),
        pytest.param("5,5,5 * * * *", "minutes", {5}, id="list-repeats"),
        pytest.param("* 9-17 * * *", "hours", set(range(9, 18)), id="range"),
        pytest.param("* 23-23 * * *", "hours", {23}, id="range-of-one"),
        pytest.param("*/15 * * * *", "minutes", {0, 15, 30, 45}, id="star-step"),
        pytest.param("*/7 * * * *", "minutes", {0, 7, 14, 21, 28, 35, 42, 49, 56},
                     id="star-step-uneven"),
        pytest.param("10-30/10 * * * *", "minutes", {10, 20, 30}, id="range-step"),
        pytest.param("10-35/10 * * * *", "minutes", {10, 20, 30}, id="range-step-uneven"),
        pytest.param("5/20 * * * *", "minutes", {5, 25, 45}, id="start-step"),
        pytest.param("* * */10 * *", "days_of_month", {1, 11, 21, 31}, id="star-step-from-1"),
        pytest.param("1-3,10,20-24/2 * * * *", "minutes", {1, 2, 3, 10, 20, 22, 24},
                     id="list-of-ranges-and-steps"),
        pytest.param("* * * jan *", "months", {1}, id="month-name"),
        pytest.param("* * * DEC *", "months", {12}, id="month-name-upper"),
        pytest.param("* * * Jun-aug *", "months", {6, 7, 8}, id="month-name-range"),
        pytest.param("* * * jan,apr,jul,oct *", "months", {1, 4, 7, 10}, id="month-name-list"),
        pytest.param("* * * jan-dec/3 *", "months", {1, 4, 7, 10}, id="month-name-step"),
        pytest.param("* * * 2,mar *", "months", {2, 3}, id="month-number-and-name"),
        pytest.param("* * * * mon-fri", "days_of_week", {1, 2, 3, 4, 5}, id="weekday-names"),
        pytest.param("* * * * SAT,sun", "days_of_week", {6, 0}, id="weekday-names-list"),
        pytest.param("* * * * sun", "days_of_week", {0}, id="sunday-name"),
        pytest.param("* * * * 0", "days_of_week", {0}, id="sunday-0"),
        pytest.param("* * * * 7", "days_of_week", {0}, id="sunday-7"),
        pytest.param("* * * * 0,7", "days_of_week", {0}, id="sunday-both"),
        pytest.param("* * * * 5-7", "days_of_week", {5, 6, 0}, id="range-to-7"),
        pytest.param("* * * * 0-7", "days_of_week", set(range(7)), id="range-0-7"),
        pytest.param("* * * * */2", "days_of_week", {0, 2, 4, 6}, id="weekday-step"),
        pytest.param("* * * * mon-fri/2", "days_of_week", {1, 3, 5}, id="weekday-name-step"),
    ],
)
def test_parse_fields(expression: str, attribute: str, expected: set[int]) -> None:
    assert getattr(CronExpression.parse(expression), attribute) == frozenset(expected)


def test_fields_are_separated_by_any_whitespace() -> None:
    assert CronExpression.parse("  0\t12   1 1\t* ") == CronExpression.parse("0 12 1 1 *")


@pytest.mark.parametrize(
    ("expression", "any_dom", "any_dow"),
    [
        ("0 0 * * *", True, True),
        ("0 0 1 * *", False, True),
        ("0 0 * * mon", True, False),
        ("0 0 1 * mon", False, False),
    ],
)
def test_restricted_day_fields(expression: str, any_dom: bool, any_dow: bool) -> None:
    cron = CronExpression.parse(expression)
    assert cron.any_day_of_month is any_dom
    assert cron.any_day_of_week is any_dow


def test_parsed_expression_is_immutable_and_comparable() -> None:
    cron = CronExpression.parse("*/5 * * * *")
    assert cron == CronExpression.parse("0-59/5 * * * *")
    assert hash(cron) == hash(CronExpression.parse("0-59/5 * * * *"))
    with pytest.raises(AttributeError):
        cron.minutes = frozenset()  # type: ignore[misc]


# --- matching ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        pytest.param("* * * * *", at(2024, 2, 29, 23, 59), True, id="every-minute"),
        pytest.param("30 4 * * *", at(2024, 5, 5, 4, 30), True, id="daily-at-time"),
        pytest.param("30 4 * * *", at(2024, 5, 5, 4, 31), False, id="daily-wrong-minute"),
        pytest.param("30 4 * * *", at(2024, 5, 5, 5, 30), False, id="daily-wrong-hour"),
        pytest.param("*/15 * * * *", at(2024, 5, 5, 7, 45), True, id="step-hit"),
        pytest.param("*/15 * * * *", at(2024, 5, 5, 7, 46), False, id="step-miss"),
        pytest.param("0 9-17 * * *", at(2024, 5, 5, 17, 0), True, id="range-end"),
        pytest.param("0 9-17 * * *", at(2024, 5, 5, 18, 0), False, id="range-after"),
        pytest.param("0 0 * jul *", at(2024, 7, 9, 0, 0), True, id="month-name-hit"),
        pytest.param("0 0 * jul *", at(2024, 8, 9, 0, 0), False, id="month-name-miss"),
        pytest.param("0 0 29 2 *", at(2024, 2, 29, 0, 0), True, id="leap-day"),
        pytest.param("0 0 * * mon-fri", FRIDAY_15TH, True, id="weekday-hit"),
        pytest.param("0 0 * * mon-fri", SUNDAY_7TH, False, id="weekend-miss"),
        pytest.param("0 0 * * 0", SUNDAY_7TH, True, id="sunday-as-0"),
        pytest.param("0 0 * * 7", SUNDAY_7TH, True, id="sunday-as-7"),
        pytest.param("0 0 * * sun", SUNDAY_7TH, True, id="sunday-by-name"),
        pytest.param("0 0 * * 7", at(2024, 1, 6, 0, 0), False, id="7-is-not-saturday"),
        pytest.param("0 0 * * 1", MONDAY_1ST, True, id="monday-is-1"),
        pytest.param("0 0 * * 6", at(2024, 1, 6, 0, 0), True, id="saturday-is-6"),
        pytest.param("0 0 30 * *", at(2024, 1, 30, 0, 0), True, id="day-of-month-hit"),
        pytest.param("0 0 30 * *", at(2024, 1, 29, 0, 0), False, id="day-of-month-miss"),
        pytest.param("30 4 * * *", at(2024, 5, 5, 4, 30).replace(second=59, microsecond=9),
                     True, id="seconds-ignored"),
    ],
)
def test_matches(expression: str, moment: datetime, expected: bool) -> None:
    assert CronExpression.parse(expression).matches(moment) is expected


def test_seven_and_zero_are_the_same_day() -> None:
    zero, seven = CronExpression.parse("0 0 * * 0"), CronExpression.parse("0 0 * * 7")
    assert zero == seven
    start = at(2024, 1, 1)
    for day in range(14):
        moment = start + timedelta(days=day)
        assert zero.matches(moment) is seven.matches(moment) is (moment.weekday() == 6)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(MONDAY_1ST, True, id="first-and-monday"),
        pytest.param(at(2024, 2, 1), True, id="first-thursday"),
        pytest.param(MONDAY_8TH, True, id="monday-not-first"),
        pytest.param(WEDNESDAY_3RD, False, id="neither"),
        pytest.param(SUNDAY_7TH, False, id="sunday-not-first"),
    ],
)
def test_both_day_fields_restricted_means_either(moment: datetime, expected: bool) -> None:
    """crontab(5): when both day fields are restricted, a day matches if either does."""
    assert CronExpression.parse("0 0 1 * mon").matches(moment) is expected


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        pytest.param("0 0 1 * *", MONDAY_1ST, True, id="dom-only-hit"),
        pytest.param("0 0 1 * *", MONDAY_8TH, False, id="dom-only-ignores-weekday"),
        pytest.param("0 0 * * mon", MONDAY_8TH, True, id="dow-only-hit"),
        pytest.param("0 0 * * mon", at(2024, 2, 1), False, id="dow-only-ignores-first"),
        pytest.param("0 0 13 * fri", at(2024, 9, 13), True, id="friday-13th"),
        pytest.param("0 0 13 * fri", at(2024, 9, 20), True, id="any-friday"),
        pytest.param("0 0 13 * fri", at(2024, 8, 13), True, id="any-13th"),
        pytest.param("0 0 13 * fri", at(2024, 8, 14), False, id="neither-13-nor-friday"),
    ],
)
def test_one_day_field_restricted_means_that_one(
    expression: str, moment: datetime, expected: bool
) -> None:
    assert CronExpression.parse(expression).matches(moment) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(MONDAY_1ST, True, id="odd-day-and-monday"),
        pytest.param(WEDNESDAY_3RD, False, id="odd-day-not-monday"),
        pytest.param(MONDAY_8TH, False, id="monday-even-day"),
    ],
)
def test_a_day_field_starting_with_star_is_not_restricted(
    moment: datetime, expected: bool
) -> None:
    """crontab(5): "both fields are restricted (i.e., don't start with *)": `*/2` in the
    day-of-month field does not switch on the either-day rule, so both must match."""
    assert CronExpression.parse("0 0 */2 * mon").matches(moment) is expected


def test_month_restricts_even_with_the_either_rule() -> None:
    cron = CronExpression.parse("0 0 1 jan mon")
    assert cron.matches(MONDAY_8TH)
    assert not cron.matches(at(2024, 2, 5))  # a Monday in February
    assert not cron.matches(at(2024, 2, 1))


def test_matching_uses_the_wall_clock_of_the_moment() -> None:
    cron = CronExpression.parse("0 9 * * mon")
    tokyo = timezone(timedelta(hours=9))
    local = datetime(2024, 1, 8, 9, 0, tzinfo=tokyo)  # Monday 09:00 in Tokyo
    assert cron.matches(local)
    assert not cron.matches(local.astimezone(UTC))  # Monday 00:00 UTC


def test_matches_over_a_whole_day() -> None:
    cron = CronExpression.parse("*/20 8-9 * * *")
    start = at(2024, 6, 1)
    hits = [start + timedelta(minutes=m) for m in range(24 * 60)
            if cron.matches(start + timedelta(minutes=m))]
    assert [h.strftime("%H:%M") for h in hits] == [
        "08:00", "08:20", "08:40", "09:00", "09:20", "09:40",
    ]


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        pytest.param("60 * * * *", "minute", id="minute-60"),
        pytest.param("-1 * * * *", "minute", id="minute-negative"),
        pytest.param("1.5 * * * *", "minute", id="minute-decimal"),
        pytest.param("jan * * * *", "minute", id="minute-name"),
        pytest.param("1,,2 * * * *", "minute", id="minute-empty-list-item"),
        pytest.param("5- * * * *", "minute", id="minute-open-range"),
        pytest.param("*/0 * * * *", "minute", id="minute-step-zero"),
        pytest.param("*/x * * * *", "minute", id="minute-step-not-number"),
        pytest.param("*/-5 * * * *", "minute", id="minute-step-negative"),
        pytest.param("30-10 * * * *", "minute", id="minute-range-backwards"),
        pytest.param("** * * * *", "minute", id="minute-double-star"),
        pytest.param("\u00b2 * * * *", "minute", id="minute-superscript-digit"),
        pytest.param("* 24 * * *", "hour", id="hour-24"),
        pytest.param("* 8-25 * * *", "hour", id="hour-range-end"),
        pytest.param("* 8-18/a * * *", "hour", id="hour-bad-step"),
        pytest.param("* * 0 * *", "day of month", id="day-of-month-0"),
        pytest.param("* * 32 * *", "day of month", id="day-of-month-32"),
        pytest.param("* * 20-10 * *", "day of month", id="day-of-month-backwards"),
        pytest.param("* * L * *", "day of month", id="day-of-month-quartz-L"),
        pytest.param("* * ? * *", "day of month", id="day-of-month-quartz-question"),
        pytest.param("* * * 0 *", "month", id="month-0"),
        pytest.param("* * * 13 *", "month", id="month-13"),
        pytest.param("* * * foo *", "month", id="month-bad-name"),
        pytest.param("* * * mon *", "month", id="month-weekday-name"),
        pytest.param("* * * dec-jan *", "month", id="month-names-backwards"),
        pytest.param("* * * * 8", "day of week", id="day-of-week-8"),
        pytest.param("* * * * funday", "day of week", id="day-of-week-bad-name"),
        pytest.param("* * * * jan", "day of week", id="day-of-week-month-name"),
        pytest.param("* * * * fri-mon", "day of week", id="day-of-week-backwards"),
        pytest.param("* * * * 1#2", "day of week", id="day-of-week-quartz-hash"),
        pytest.param("* * * * monday", "day of week", id="day-of-week-full-name"),
    ],
)
def test_bad_field_is_named(expression: str, field: str) -> None:
    with pytest.raises(CronError, match=f"^{re.escape(field)}: "):
        CronExpression.parse(expression)


@pytest.mark.parametrize(
    "expression",
    ["", "   ", "* * * *", "* * * * * *", "0 0 * * * /bin/true", "@hourly", "@reboot"],
)
def test_wrong_number_of_fields(expression: str) -> None:
    with pytest.raises(CronError, match="expected 5 fields"):
        CronExpression.parse(expression)


def test_cron_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="minute"):
        CronExpression.parse("99 * * * *")
