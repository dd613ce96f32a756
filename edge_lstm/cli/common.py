"""What the commands share: their common options, declared once, and small helpers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ..errors import ConfigError
from ..stream.address import FORMS, BrokerAddress, parse_broker

ModelOption = Annotated[
    Path | None, typer.Option(help="Model .tflite (default: the shipped default model).")
]
BackendOption = Annotated[
    str | None, typer.Option(help="Interpreter: ai_edge_litert, tflite_runtime, tensorflow.")
]
BrokerOption = Annotated[str, typer.Option(help=f"MQTT broker: {FORMS}.")]


def broker_or(when_absent: str) -> Any:  # typer.Option's own return type
    """The ``--broker`` option of a command that does something else without one."""
    return typer.Option(help=f"MQTT broker: {FORMS}. Without it: {when_absent}.")


def client_address(broker: str) -> BrokerAddress:
    """``--broker`` parsed for this command's own client; ``fail`` on a bad address.

    The command-line clients (publisher, recorder) speak plain MQTT only: an ``mqtts://``
    address is refused here rather than connected to without TLS.
    """
    try:
        address = parse_broker(broker)
    except ConfigError as exc:
        fail(str(exc))
    if address.tls:
        fail(f"--broker {broker!r}: this command's MQTT client has no TLS; give a plain address")
    return address


def fail(message: str, code: int = 1) -> NoReturn:
    """One ``error: ...`` line on stderr, then exit with ``code`` (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def json_safe(value: object) -> object:
    """NaN and inf are not JSON: a figure that does not exist becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
