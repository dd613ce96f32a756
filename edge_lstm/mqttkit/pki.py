"""A throw-away certificate authority for TLS tests, made with the ``openssl`` CLI."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import BrokerError


class MissingTool(BrokerError):
    """A program the kit needs (mosquitto, mosquitto_passwd, openssl) is not installed."""


@dataclass(frozen=True)
class Pki:
    """Paths of a test CA, a server cert for 127.0.0.1/localhost, and client certs."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    # Signed by a different CA: a broker that trusts only ``ca_cert`` must refuse it, and a
    # client that trusts only ``rogue_ca_cert`` must refuse the broker.
    rogue_ca_cert: Path
    rogue_client_cert: Path
    rogue_client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise MissingTool("the openssl CLI is not installed")
    proc = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise BrokerError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def _ec_key(path: Path, cwd: Path) -> None:
    # EC keys: generated in milliseconds, where RSA would cost seconds on a Pi-class CI box.
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path), cwd=cwd)


def _make_ca(d: Path, name: str) -> tuple[Path, Path]:
    key, cert = d / f"{name}.key", d / f"{name}.crt"
    _ec_key(key, d)
    _openssl(
        "req", "-x509", "-new", "-key", str(key), "-sha256", "-days", "3650",
        "-subj", f"/CN={name}", "-out", str(cert), cwd=d,
    )  # fmt: skip
    return key, cert


def _sign(d: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
    ext_file = d / f"{name}.ext"
    ext_file.write_text(ext)
    _ec_key(key, d)
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr), cwd=d)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
        "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", str(ext_file),
        "-out", str(cert), cwd=d,
    )  # fmt: skip
    return cert, key


def make_pki(d: Path) -> Pki:
    """Generate a test CA, a server cert valid for 127.0.0.1 and localhost, and client certs."""
    d.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(d, "test-ca")
    rogue = _make_ca(d, "rogue-ca")
    server_ext = (
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    client_ext = (
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
    )
    server_cert, server_key = _sign(d, "server", ca, server_ext)
    client_cert, client_key = _sign(d, "client", ca, client_ext)
    rogue_cert, rogue_key = _sign(d, "rogue-client", rogue, client_ext)
    return Pki(
        ca_cert=ca[1],
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        rogue_ca_cert=rogue[1],
        rogue_client_cert=rogue_cert,
        rogue_client_key=rogue_key,
    )
