"""Home Assistant MQTT discovery: one sensor entity per (sensor, feature) forecast. Pure.

Configs are published retained under ``<prefix>/sensor/edge_lstm/<object_id>/config`` and again
whenever Home Assistant announces ``online`` on ``<prefix>/status`` (it forgets non-retained
state on restart). The entity's state is step 1 of the forecast; the whole horizon is in its
attributes.
"""

from __future__ import annotations

import hashlib
import json
import re

from ..model.metadata import ModelMeta
from ..stream.topics import OutputTopics

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def object_id(sensor_id: str, feature: str | None = None) -> str:
    """An id HA accepts (``[a-zA-Z0-9_-]``), unique even when two sensor ids slug alike."""
    raw = sensor_id if feature is None else f"{sensor_id}\0{feature}"
    digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:6]
    slug = _UNSAFE.sub("_", sensor_id)[:48]
    if feature is not None:
        slug += "_" + _UNSAFE.sub("_", feature)[:24]
    return f"{slug}_{digest}"


def status_topic(prefix: str) -> str:
    """Where Home Assistant announces ``online`` / ``offline``."""
    return f"{prefix}/status"


def discovery_messages(
    prefix: str, out: OutputTopics, meta: ModelMeta, sensor_id: str, node: str
) -> list[tuple[str, bytes]]:
    """``(topic, payload)`` for each entity of one sensor (one per model feature)."""
    single = meta.n_features == 1
    messages = []
    for feature in meta.features:
        oid = object_id(sensor_id, None if single else feature)
        value = "value_json.forecast[0].v" + ("" if single else f"[{json.dumps(feature)}]")
        config = {
            "name": f"{sensor_id} forecast" if single else f"{sensor_id} {feature} forecast",
            "unique_id": f"edge_lstm_{node}_{oid}",
            "state_topic": out.forecast(sensor_id),
            "value_template": "{{ " + value + " }}",
            "json_attributes_topic": out.forecast(sensor_id),
            "json_attributes_template": (
                "{{ {'forecast': value_json.forecast, 'status': value_json.status, "
                "'issued_at': value_json.issued_at, 'step_s': value_json.step_s} | tojson }}"
            ),
            "availability_topic": out.status,
            "payload_available": "online",
            "payload_not_available": "offline",
            "state_class": "measurement",
            "device": {
                "identifiers": [f"edge_lstm_{node}"],
                "name": f"edge-lstm {node}",
                "model": meta.name,
                "manufacturer": "edge-lstm",
            },
        }
        topic = f"{prefix}/sensor/edge_lstm/{oid}/config"
        messages.append((topic, json.dumps(config).encode("utf-8")))
    return messages
