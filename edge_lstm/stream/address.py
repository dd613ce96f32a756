"""The one parser of MQTT broker addresses, used by the config and every ``--broker``. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

MQTT_PORT = 1883
MQTTS_PORT = 8883
FORMS = (
    "HOST, HOST:PORT, [IPv6]:PORT, mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS, port 8883), "
    "e.g. 'pi.local:1883'"
)
_SCHEMES = {"mqtt": False, "mqtts": True}
# Characters that cannot be in a host name or address; '@' is a user name (username, not here).
_NOT_IN_HOST = frozenset("/@?#[]\\")


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker listens, and whether the address asked for TLS (``mqtts://``)."""

    host: str
    port: int
    tls: bool = False

    def __str__(self) -> str:
        """The canonical spelling, which :func:`parse_broker` reads back to the same address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtts://{host}:{self.port}" if self.tls else f"{host}:{self.port}"


def parse_broker(text: str) -> BrokerAddress:
    """``"pi:1884"``, ``"[::1]:1883"``, ``"mqtts://pi"`` ... -> :class:`BrokerAddress`.

    A bare IPv6 address (``::1``) is taken whole with the default port. Any other scheme, a user
    name, a path or a bad port is a one-line ``ConfigError`` that names the broker and shows
    the accepted forms.

    >>> parse_broker("[::1]:1884"), parse_broker("mqtts://pi.local")
    (BrokerAddress(host='::1', port=1884, tls=False), BrokerAddress(host='pi.local', port=8883, tls=True))
    """  # noqa: E501 - a doctest's output is one line
    rest = text.strip()
    scheme, sep, after = rest.partition("://")
    tls = False
    if sep:
        if scheme.lower() not in _SCHEMES:
            raise ConfigError(f"broker {text!r}: unknown scheme {scheme}://; give {FORMS}")
        tls = _SCHEMES[scheme.lower()]
        rest = after[:-1] if after.endswith("/") else after  # mqtt://host/ is still the host
    if "@" in rest:
        raise ConfigError(f"broker {text!r}: no user name here (set username); expected {FORMS}")
    default_port = MQTTS_PORT if tls else MQTT_PORT
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")) or ":" not in host:
            raise ConfigError(f"broker {text!r}: expected {FORMS}")
        port_text = tail[1:] if tail else str(default_port)
    elif rest.count(":") > 1 and not sep:  # a bare IPv6 address
        host, port_text = rest, str(default_port)
    else:
        host, colon, port_text = rest.partition(":")
        port_text = port_text if colon else str(default_port)
    if not host or any(c.isspace() or c in _NOT_IN_HOST for c in host):
        raise ConfigError(f"broker {text!r}: bad host {host!r}; expected {FORMS}")
    if not (port_text.isascii() and port_text.isdigit()):
        raise ConfigError(f"broker {text!r}: port {port_text!r} is not a number; expected {FORMS}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"broker {text!r}: port must be 1..65535")
    return BrokerAddress(host, port, tls)
