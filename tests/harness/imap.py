"""IMAP clients for tests: imaplib and imapclient over TLS to a node, trusting the
node's self-signed test certificate."""

from __future__ import annotations

import imaplib
import ssl

from harness import PASSWORD


def tls_context(cert: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False  # the certificate names mx.test; the node is an IP
    return ctx


def settings(cert: tuple[str, str]) -> dict:
    """Node settings for IMAP with TLS: 1143 (STARTTLS) and 1993 (TLS)."""
    return {
        "tls.cert": cert[0],
        "tls.key": cert[1],
        "imap.listen": "{ip}:1143",
        "imap.listen_tls": "{ip}:1993",
    }


def login(node, user: str, cert: str, password: str = PASSWORD) -> imaplib.IMAP4_SSL:
    """imaplib on the TLS port, logged in."""
    c = imaplib.IMAP4_SSL(*node.imaps, ssl_context=tls_context(cert), timeout=30)
    try:
        c.login(user, password)
    except BaseException:
        c.shutdown()  # refused (a failover): no socket left behind
        raise
    return c


def client(node, user: str, cert: str, password: str = PASSWORD):
    """imapclient on the TLS port, logged in."""
    from imapclient import IMAPClient

    c = IMAPClient(
        node.imaps[0], port=node.imaps[1], ssl=True, ssl_context=tls_context(cert), timeout=30
    )
    try:
        c.login(user, password)
    except BaseException:
        c.shutdown()  # refused (a failover): no socket left behind
        raise
    return c


def ok(result: tuple) -> list:
    typ, data = result
    assert typ == "OK", (typ, data)
    return data
