"""Property: no payload raises out of the intake path, and junk changes nothing for good sensors.

Hypothesis drives the real ``Pipeline`` (the worker's intake and stepping, with the golden model
in the real interpreter) with integers and floats at the edges of float64 and beyond, deep and
wide JSON, every Unicode category in sensor ids and values, and timestamps across the whole
range Python can represent. Good sensors' forecast documents must be byte-identical to those of
a run that never saw the junk. ``test_fuzz_daemon.py`` sends similar traffic through a real
Mosquitto to the real ``edge-lstm run`` process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_lstm.daemon.config import Config
from edge_lstm.daemon.pipeline import Pipeline
from edge_lstm.model.forecaster import Forecaster
from edge_lstm.stream.readings import Inbound

T0 = 1_704_067_200.0
STEP = 60.0
GOOD = ("good-a", "good-b")
N_STEPS = 6

edge_ints = st.one_of(
    st.integers(),
    st.sampled_from([2**53 + 1, 2**63, 2**64, 2**1023, 2**1024, 10**308, 10**309, 10**400]),
    st.integers(1, 4000).map(lambda n: 10**n),
    st.integers(1, 4000).map(lambda n: -(10**n)),
)
edge_floats = st.one_of(
    st.floats(width=64),  # NaN, infinities, subnormals, -0.0, the largest finite
    st.sampled_from([sys.float_info.max, -sys.float_info.max, sys.float_info.min, 5e-324]),
)
any_text = st.text(st.characters(exclude_categories=()), max_size=20)  # every category, Cs too
json_leaf = st.one_of(edge_ints, edge_floats, any_text, st.booleans(), st.none())
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(any_text, inner, max_size=6)
    ),
    max_leaves=30,
)
timestamps = st.one_of(
    edge_floats,
    edge_ints,
    st.datetimes().map(lambda d: d.isoformat()),  # years 1..9999, no zone
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    any_text,
)


def _dumps(doc: object) -> bytes:
    # Python's json writes NaN/Infinity and huge integers: exactly the junk wanted here.
    # Beyond 4300 digits str(int) refuses, so those go in as raw digits.
    try:
        return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except ValueError:
        return b'{"value": ' + b"9" * 5000 + b"}"


payloads = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda v, t: _dumps({"value": v, "ts": t}), json_values, timestamps),
    st.builds(lambda v: _dumps({"temperature": v, "humidity": v}), json_values),
    st.builds(lambda v: _dumps(v), json_values),
    st.integers(1, 3000).map(lambda n: b'{"value":' + b"[" * n + b"1" + b"]" * n + b"}"),  # deep
    st.integers(1, 3000).map(  # wide
        lambda n: b'{"value": [1, 2], ' + b", ".join(b'"k%d": %d' % (i, i) for i in range(n)) + b"}"
    ),
    any_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
)
# Payloads that can never be a reading: junk aimed at the good sensors' own topics.
never_readings = st.one_of(
    st.builds(lambda v: _dumps({"value": [v, 1.0]}), st.sampled_from([10**400, -(10**309)])),
    st.builds(lambda t: _dumps({"value": [1.0, 2.0], "ts": t}), st.sampled_from([10**400, 1e300])),
    st.just(b'{"value": [NaN, 1]}'),
    st.just(b'{"value": [1, 2], "ts": 4070908800}'),  # 2099: far ahead of its arrival
    st.integers(3000, 5000).map(lambda n: b'{"value":' + b"[" * n + b"]" * n + b"}"),
)
ids = any_text.filter(lambda s: s not in GOOD)
junk = st.lists(
    st.one_of(
        st.tuples(ids, payloads),
        st.tuples(st.sampled_from(GOOD), never_readings),
    ),
    max_size=25,
)


def _pipeline(golden_model: Path) -> Pipeline:
    config = Config.load(overrides={"max_payload_bytes": 1_048_576, "max_sensors": 200})
    return Pipeline(Forecaster.load(golden_model, max_sensors=200), config)


def _good(sensor: str, k: int) -> Inbound:
    payload = json.dumps({"value": [20.0 + k * 0.5, 50.0 - k], "ts": T0 + k * STEP}).encode()
    return Inbound(f"sensors/{sensor}", payload, 1, 1, T0 + k * STEP + 1.0, 0.0)


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rounds=st.lists(junk, min_size=N_STEPS, max_size=N_STEPS))
def test_junk_never_raises_and_never_touches_good_sensors(
    golden_model: Path, rounds: list[list[tuple[str, bytes]]]
) -> None:
    dirty, clean = _pipeline(golden_model), _pipeline(golden_model)
    dirty_out, clean_out = [], []
    for k, round_junk in enumerate(rounds):
        arrival = T0 + k * STEP + 1.0
        good = [_good(s, k) for s in GOOD]
        bad = [Inbound(f"sensors/{s}", p, 2, 1, arrival, 0.0) for s, p in round_junk]
        # Junk before, between and after the good readings of the same batch.
        batch = bad[: len(bad) // 2] + good[:1] + bad[len(bad) // 2 :] + good[1:]
        out = dirty.handle(batch, arrival).publish  # must not raise, whatever the junk
        dirty_out += [o for o in out if o.sensor_id in GOOD]
        clean_out += [o for o in clean.handle(good, arrival).publish]
    assert [(o.topic, o.payload) for o in dirty_out] == [(o.topic, o.payload) for o in clean_out]
    assert len(clean_out) == len(GOOD) * (N_STEPS - 1)
    received = dirty.counters.accepted + sum(dirty.counters.rejected.values())
    assert received == sum(len(r) for r in rounds) + len(GOOD) * N_STEPS
    assert "internal_error" not in dirty.counters.rejected, dirty.counters.rejected
