"""Topic templates and sensor-id validation (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_lstm.errors import ConfigError, PayloadError
from edge_lstm.stream import topics
from edge_lstm.stream.topics import (
    OutputTopics,
    TopicRouter,
    TopicTemplate,
    check_sensor_id,
    filters_overlap,
    sensor_id_problem,
    validate_output_prefix,
)

SEGMENT = st.text(
    alphabet=st.characters(blacklist_characters="/+#", blacklist_categories=("Cs", "Cc")),
    min_size=1,
    max_size=20,
)


def test_default_template() -> None:
    t = TopicTemplate("sensors/{sensor}")
    assert t.subscription == "sensors/+"
    assert t.match("sensors/kitchen") == "kitchen"
    assert t.match("sensors/kitchen/extra") is None
    assert t.match("other/kitchen") is None
    assert t.topic_for("k1") == "sensors/k1"


def test_placeholder_in_the_middle_and_plus_segments() -> None:
    t = TopicTemplate("home/+/{sensor}/temperature")
    assert t.subscription == "home/+/+/temperature"
    assert t.match("home/floor1/probe/temperature") == "probe"
    assert t.match("home/floor1/probe/humidity") is None
    with pytest.raises(ValueError):
        t.topic_for("x")


@pytest.mark.parametrize(
    "bad",
    [
        "sensors",
        "sensors/#",
        "sensors/{sensor}/#",
        "a/{sensor}/{sensor}",
        "a/x{sensor}",
        "a/b+/{sensor}",
        "a/{other}/{sensor}",
    ],
)
def test_bad_templates_name_the_template(bad: str) -> None:
    with pytest.raises(ConfigError, match="topic template"):
        TopicTemplate(bad)


@pytest.mark.parametrize(
    "bad", ["", "a/b", "a+b", "a#", "$SYS", " pad", "nul\x00", "tab\tx", "x" * 129]
)
def test_bad_sensor_ids(bad: str) -> None:
    assert sensor_id_problem(bad) is not None
    with pytest.raises(PayloadError) as info:
        check_sensor_id(bad)
    assert info.value.reason == "bad_sensor_id"


@pytest.mark.parametrize("good", ["kitchen", "probe-1", "a.b:c@d", "Küche", "0x00158d0001"])
def test_good_sensor_ids(good: str) -> None:
    assert check_sensor_id(good) == good


@given(SEGMENT)
def test_round_trip_any_valid_id(sensor_id: str) -> None:
    t = TopicTemplate("s/{sensor}/v")
    assert t.match(t.topic_for(sensor_id)) == sensor_id


@given(st.text(max_size=40))
def test_valid_ids_never_break_output_topics(sensor_id: str) -> None:
    if sensor_id_problem(sensor_id) is not None:
        return
    out = OutputTopics("edge-lstm")
    topic = out.forecast(sensor_id)
    assert topic.split("/") == ["edge-lstm", sensor_id, "forecast"]
    assert "+" not in topic and "#" not in topic


def test_router_first_match_and_errors() -> None:
    router = TopicRouter(
        (TopicTemplate("a/{sensor}"), TopicTemplate("b/{sensor}/t"), TopicTemplate("a/{sensor}"))
    )
    assert router.subscriptions == ["a/+", "b/+/t"]
    assert router.sensor_for("b/x/t") == "x"
    with pytest.raises(PayloadError) as info:
        router.sensor_for("c/x")
    assert info.value.reason == "bad_topic"
    with pytest.raises(PayloadError) as info:
        router.sensor_for("a/$bad")
    assert info.value.reason == "bad_sensor_id"


@pytest.mark.parametrize("bad", ["", "a//b", "a/+", "a/#", "/a"])
def test_bad_output_prefix(bad: str) -> None:
    with pytest.raises(ConfigError):
        validate_output_prefix(bad)


@pytest.mark.parametrize(
    "sensor_id",
    ["gnp.\u202eexe", "a\u2028b", "a\u2029b", "zero\u200bwidth", "bom\ufeff", "a\u0085b",
     "soft\u00adhyphen", "\u2066isolate"],
)  # fmt: skip
def test_format_and_separator_characters_are_refused(sensor_id: str) -> None:
    problem = sensor_id_problem(sensor_id)
    assert problem is not None and "U+" in problem


def test_ordinary_unicode_ids_are_fine() -> None:
    for sensor_id in ["é漢", "küche-1", "温度", "a b", "emoji-\U0001f321"]:
        assert sensor_id_problem(sensor_id) is None, sensor_id


def test_output_prefix_may_not_be_a_broker_topic() -> None:
    for prefix in ["$SYS/x", "$share/g", "a\u202eb"]:
        with pytest.raises(ConfigError):
            validate_output_prefix(prefix)


def test_filters_overlap() -> None:
    assert filters_overlap("mf/+", "mf/status")
    assert filters_overlap("+/+", "edge-lstm/health")
    assert filters_overlap("a/+/c", "a/+/c")
    assert not filters_overlap("mf/+", "mf/+/forecast")
    assert not filters_overlap("sensors/+", "edge-lstm/status")


def _problem_without_fast_path(sensor_id: str) -> str | None:
    """``sensor_id_problem`` with its printable-ASCII shortcut taken out."""
    saved = topics._PLAIN_ID
    topics._PLAIN_ID = re.compile(r"(?!)")  # matches nothing
    try:
        return topics.sensor_id_problem(sensor_id)
    finally:
        topics._PLAIN_ID = saved


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=130))
def test_ascii_shortcut_agrees_with_the_full_checks(sensor_id: str) -> None:
    fine = _problem_without_fast_path(sensor_id) is None
    assert (topics._PLAIN_ID.fullmatch(sensor_id) is not None) == fine
    assert (topics.sensor_id_problem(sensor_id) is None) == fine


@pytest.mark.parametrize(
    "sensor_id", ["a", "b00042", "x" * 128, "a b", "~!\"%'()*,-.:;<=>?@[\\]^_`{|}~", "a$"]
)
def test_plain_ascii_ids_take_the_shortcut(sensor_id: str) -> None:
    assert topics._PLAIN_ID.fullmatch(sensor_id) and topics.sensor_id_problem(sensor_id) is None


@pytest.mark.parametrize(
    "sensor_id", ["", "x" * 129, "$a", " a", "a ", "a/b", "a+b", "a#b", "a\tb", "a\x7f", "é"]
)
def test_everything_else_goes_through_the_full_checks(sensor_id: str) -> None:
    assert topics._PLAIN_ID.fullmatch(sensor_id) is None
    assert (topics.sensor_id_problem(sensor_id) is None) == (sensor_id == "é")
