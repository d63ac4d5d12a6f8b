"""The test servers' self-signed certificates (STARTTLS of the remote MX, POP3 STLS):
mailnode.tls.self_signed, named after the host so several can share a directory."""

from __future__ import annotations

import os

from mailnode.tls import self_signed


def make_certificate(directory: str | os.PathLike, hostname: str = "mx.test") -> tuple[str, str]:
    """A self-signed certificate (SAN: hostname, 127.0.0.1) and its key: (certfile, keyfile)."""
    directory = os.fspath(directory)
    return self_signed(
        os.path.join(directory, f"{hostname}-cert.pem"),
        os.path.join(directory, f"{hostname}-key.pem"),
        hostname,
        days=1,
        loopback=True,
    )
