"""The one timestamp parser: ISO 8601 or epoch seconds, the same on every Python version."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_lstm.stream.timestamps import parse_timestamp

EPOCH_2023 = 1_700_000_100.0  # 2023-11-14T22:15:00Z


@pytest.mark.parametrize(
    "text",
    [
        "2023-11-14T22:15:00Z",
        "2023-11-14T22:15:00z",
        "2023-11-14t22:15:00Z",
        "2023-11-14 22:15:00Z",
        "2023-11-14T22:15:00",  # no zone: UTC
        "2023-11-14T22:15",
        "2023-11-14T22:15Z",
        "2023-11-14T23:15:00+01:00",
        "2023-11-14T23:15:00+0100",
        "2023-11-14T23:15:00+01",
        "2023-11-14T21:15:00-01:00",
        "2023-11-14T22:15:00.000Z",
        "2023-11-14T22:15:00,0Z",
        " 2023-11-14T22:15:00Z\n",
        "1700000100",
        "1700000100.0",
        "1.7000001e9",
        "+1700000100",
    ],
)
def test_the_forms_we_accept(text: str) -> None:
    assert parse_timestamp(text) == EPOCH_2023


def test_a_date_alone_is_midnight_utc() -> None:
    assert parse_timestamp("2019-01-01") == 1_546_300_800.0


def test_fractions_of_any_length_up_to_nanoseconds() -> None:
    assert parse_timestamp("2023-11-14T22:15:00.5Z") == EPOCH_2023 + 0.5
    assert parse_timestamp("2023-11-14T22:15:00.123456789Z") == pytest.approx(
        EPOCH_2023 + 0.123456789, abs=1e-6
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2023-02-29T00:00:00Z",  # not a leap year
        "2023-13-01",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:60:00Z",
        "2023-11-14T22:15:61Z",
        "2023-11-14T22:15:00+24:00",
        "2023-11-14T22:15:00+01:60",
        "2023-W46-2",  # week dates: 3.11's fromisoformat takes them, we do not
        "20231114T221500Z",  # the basic format, likewise
        "2023-11-14T22:15:00.Z",
        "2023-11-14T22:15:00.1234567890Z",
        "0000-01-01",
        "nan",
        "inf",
        "1e400",
        "1_700_000_100",
        "\u0661\u0667\u0660\u0660",  # Arabic-Indic digits: int() reads them, we do not
        "2023-11-14T22:15:00Z extra",
    ],
)
def test_everything_else_is_a_value_error_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="time "):
        parse_timestamp(text)


def test_not_text_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not text"):
        parse_timestamp(1700000100)  # type: ignore[arg-type]


ZONES = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES
)


@given(MOMENTS)
def test_agrees_with_isoformat_for_every_moment_and_zone(moment: datetime) -> None:
    text = moment.isoformat()
    assert parse_timestamp(text) == pytest.approx(moment.timestamp(), abs=1e-6)
    as_z = moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    assert parse_timestamp(as_z) == pytest.approx(moment.timestamp(), abs=1e-6)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_epoch_seconds_round_trip(value: float) -> None:
    assert parse_timestamp(repr(value)) == value


@given(st.text(max_size=40))
def test_any_text_gives_a_float_or_a_value_error(text: str) -> None:
    outcome: float | str
    try:
        outcome = parse_timestamp(text)
    except ValueError as exc:
        outcome = str(exc)  # anything but ValueError would fail the test
    assert isinstance(outcome, float) or "\n" not in outcome
