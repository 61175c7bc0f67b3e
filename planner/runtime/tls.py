"""TLS for the edge <-> cloud link: the server's context from a certificate and key, the client's from a CA
file or the system store, and the loopback test behind the "token in cleartext" warnings.

`tls` on the client side is None/False (plain TCP), True (verify against the system store), a CA file path
(verify against it, e.g. a self-signed certificate), or a ready `ssl.SSLContext`.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from planner.errors import PlannerError

LOOPBACK_NAMES = ("localhost",)


class TLSError(PlannerError):
    """A certificate, key or CA file that cannot be used."""


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context for `planner serve --tls-cert FILE --tls-key FILE`."""
    for what, path in (("certificate", cert), ("key", key)):
        if not Path(path).is_file():
            raise TLSError(f"TLS {what} file {str(path)!r} does not exist")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise TLSError(f"cannot load TLS certificate {str(cert)!r} with key {str(key)!r}: {exc}") from None
    return ctx


def client_context(tls: bool | str | Path | ssl.SSLContext | None) -> ssl.SSLContext | None:
    """The client's context for `tls` (see the module doc); None for plain TCP."""
    if tls is None or tls is False:
        return None
    if isinstance(tls, ssl.SSLContext):
        return tls
    if tls is True:
        return ssl.create_default_context()
    if not Path(tls).is_file():
        raise TLSError(f"TLS CA file {str(tls)!r} does not exist")
    try:
        return ssl.create_default_context(cafile=str(tls))
    except (ssl.SSLError, OSError) as exc:
        raise TLSError(f"cannot load TLS CA file {str(tls)!r}: {exc}") from None


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


PLAIN_TCP_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")
# ^ OpenSSL's reasons for a TLS handshake answered in plain text (the server speaks plain TCP)


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether host:port completes a TLS handshake (certificate not checked): tells a plain client that a server
    which hung up on its HELLO is a TLS server."""
    import socket

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, ctx.wrap_socket(raw):
            return True
    except (OSError, ssl.SSLError):
        return False
