"""Client-side helpers for tests: real smtplib/poplib/sockets against a node."""

from __future__ import annotations

import poplib
import socket
import ssl

from harness import PASSWORD


def pop3_messages(
    addr: tuple[str, int],
    user: str,
    password: str = PASSWORD,
    *,
    tls: bool = False,
    delete: bool = False,
) -> list[bytes]:
    """Every message of the mailbox, bytes as POP3 returns them (CRLF line ends)."""
    p = poplib.POP3(*addr, timeout=30)
    try:
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            p.stls(ctx)
        p.user(user)
        p.pass_(password)
        count, _ = p.stat()
        out = []
        for i in range(1, count + 1):
            _, lines, _ = p.retr(i)
            out.append(b"\r\n".join(lines) + b"\r\n")
            if delete:
                p.dele(i)
        p.quit()
        return out
    finally:
        p.close()


def body_of(stored: bytes) -> bytes:
    """The message as the client sent it: the stored bytes without our Received: header."""
    assert stored.startswith(b"Received: "), stored[:80]
    i = stored.index(b"\r\n", 0)
    while stored[i + 2 : i + 3] in (b"\t", b" "):  # folded continuation lines
        i = stored.index(b"\r\n", i + 2)
    return stored[i + 2 :]


class RawSMTP:
    """A raw SMTP dialogue over a socket, for pipelining and malformed input."""

    def __init__(self, addr: tuple[str, int]):
        self.sock = socket.create_connection(addr, timeout=30)
        self.buf = b""
        self.greeting = self.reply()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply: code and the text of its last line."""
        while True:
            line = self.line()
            if line[3:4] != b"-":
                return int(line[:3]), line[4:].decode()

    def cmd(self, text: str) -> tuple[int, str]:
        self.send(text.encode() + b"\r\n")
        return self.reply()
