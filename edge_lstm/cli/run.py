"""``edge-lstm run``: the daemon. Every setting of ``Config`` is also a flag, generated here.

The flags are built from the config fields (names, types, help), so a new setting cannot be
forgotten on the command line; ``EDGE_LSTM_<NAME>`` variables are read by ``Config.load``.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from ..daemon.config import FIELDS, SCHEMA, Config, field_help
from ..errors import EdgeLstmError


def run(**options: Any) -> None:
    """Run the daemon: MQTT sensor readings in, rolling forecasts out (see docs/daemon.md)."""
    config_path: Path | None = options.pop("config")
    validate_only: bool = options.pop("validate_config")
    if config_path is None and os.environ.get("EDGE_LSTM_CONFIG"):
        config_path = Path(os.environ["EDGE_LSTM_CONFIG"])
    overrides = {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()}
    if overrides.get("topics") == ():
        overrides["topics"] = None
    try:
        config = Config.load(config_path, os.environ, overrides)
        if validate_only:
            config.password()  # a missing credential is a config error too
            check_model(config)  # systemd's pre-flight: a model that cannot load is an error
            typer.echo(json.dumps(config.to_dict(), indent=2))
            typer.echo("configuration is valid", err=True)
            return
        check_model(config, interpreter=False)  # a missing or corrupt file: one line, here
    except EdgeLstmError as exc:
        typer.echo(f"edge-lstm run: error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    # The daemon itself runs without the command-line layer (see edge_lstm/daemon/__main__.py).
    from ..daemon.__main__ import HANDOVER, handover

    os.environ[HANDOVER] = handover(config_path, overrides)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "edge_lstm.daemon"])


def check_model(config: Config, interpreter: bool = True) -> None:
    """Load the configured model (file, sidecar, checksum and, with ``interpreter``, the
    interpreter); ``ModelError`` if it cannot load."""
    from ..errors import ModelError
    from ..model.paths import default_model_path
    from ..model.runtime import StepModel

    path = config.model or default_model_path()
    try:
        StepModel.load(path) if interpreter else StepModel.read(path)
    except ModelError as exc:
        raise ModelError(f"model: {exc}") from None


def _option_type(kind: Any) -> tuple[Any, dict[str, Any]]:
    """The CLI type of a config field, and extra ``typer.Option`` settings."""
    base = kind
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        base = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(base) is tuple:
        # repeatable (--topic a --topic b); typer would label it <list[str]>
        return Optional[list[str]], {"metavar": "<template>"}  # noqa: UP045 - typer reads this
    if typing.get_origin(base) is Literal:
        return Optional[str], {"metavar": "|".join(typing.get_args(base))}  # noqa: UP045
    return Optional[base], {}  # noqa: UP045


def _default_text(name: str, flag: str) -> str:
    """The config default as ``--help`` shows it (the option's own default stays None, so a
    flag that is not given never overrides the config file or the environment)."""
    value = SCHEMA.default(name)
    if value is None or value == ():
        return ""  # "none" or "the model's": the help text says which
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _signature() -> inspect.Signature:
    params = [
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Optional[Path],  # noqa: UP045
                typer.Option("--config", "-c", help="TOML config file (env EDGE_LSTM_CONFIG)."),
            ],
        ),
        inspect.Parameter(
            "validate_config",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[
                bool,
                typer.Option(
                    "--validate-config", help="Check the configuration, print it and exit."
                ),
            ],
        ),
    ]
    for name, kind in FIELDS.items():
        cli_type, extra = _option_type(kind)
        flag = SCHEMA.flag(name)
        decls = [flag]
        base = typing.get_args(cli_type)[0]
        if base is bool:
            decls = [f"{flag}/--no-{flag[2:]}"]
        # Parentheses, not typer's [brackets]: Rich would read "[env ...]" as markup and drop it.
        default = _default_text(name, flag)
        env = f"env {SCHEMA.env(name)}"
        help_text = f"{field_help(name)} ({env}" + (f"; default: {default})" if default else ")")
        option = typer.Option(*decls, help=help_text, show_default=False, **extra)
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[cli_type, option],
            )
        )
    return inspect.Signature(params)


run.__signature__ = _signature()  # type: ignore[attr-defined]
