"""The sidecar document: one layout read and written; every shipped sidecar round-trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_lstm.errors import ModelError
from edge_lstm.model.metadata import ModelMeta

ROOT = Path(__file__).parent.parent
# Found by walking the tree, not by git: CI also runs these tests from a plain copy of it.
SIDECARS = sorted(
    path
    for folder in ("models", "tests", "edge_lstm/bench/models")  # the last: not in that copy
    for path in (ROOT / folder).rglob("*.json")
    if '"tflite_sha256"' in path.read_text(encoding="utf-8")
)


def test_both_formats_are_shipped() -> None:
    versions = {ModelMeta.load(path).format_version for path in SIDECARS}
    assert versions == {1, 2}


@pytest.mark.parametrize("path", SIDECARS, ids=lambda p: p.name)
def test_every_shipped_sidecar_writes_back_byte_for_byte(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    meta = ModelMeta.from_json(text)
    assert meta.to_json() == text
    assert ModelMeta.from_json(meta.to_json()) == meta


def golden() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / "tests" / "golden" / "golden.json").read_text())
    return doc


def test_optional_parts_may_be_absent_or_null() -> None:
    doc = golden()
    for key in ("parity", "validation", "info"):
        doc.pop(key, None)
    meta = ModelMeta.from_json(json.dumps(doc))
    assert meta.parity is None and meta.validation is None and meta.info == {}
    doc.update(parity=None, validation=None, info=None)
    assert ModelMeta.from_json(json.dumps(doc)) == meta


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d["tensors"].pop("x"), "missing key 'x'"),
        (lambda d: d["layers"][0].pop("units"), "missing key 'units'"),
        (lambda d: d.pop("scaler"), "missing key 'scaler'"),
        (lambda d: d.update(tensors=[]), "src: "),
        (lambda d: d.update(horizon="soon"), "src: "),
        (lambda d: d.update(horizon=0), "horizon must be >= 1"),
        (lambda d: d.update(parity={"nope": 1}), "nope"),
        (lambda d: d.update(inputs={"lags": [24]}), "inputs needs format_version 2"),
    ],
)
def test_a_bad_sidecar_is_one_model_error_naming_the_problem(change: Any, needle: str) -> None:
    doc = golden()
    assert doc["format_version"] == 1
    change(doc)
    with pytest.raises(ModelError) as info:
        ModelMeta.from_json(json.dumps(doc), source="src")
    message = str(info.value)
    assert message.startswith("src: ") and needle in message and "\n" not in message
