"""POP3 server against Python's poplib and raw sockets, on a real 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import logging
import poplib
import socket
import ssl
import threading
import time

import pytest
from harness.certs import make_certificate

from mailnode.pop3 import server as pop3
from mailnode.pop3.server import MailboxBusy, MessageRef, Pop3Server

MAILBOX = "alice@example.org"
PASSWORD = "s3cret pass phrase"
AUTH_DELAY = 0.2

DOTS = (
    b"From: bob@example.org\r\nSubject: dots\r\n\r\n"
    b".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n."
)
NO_CRLF = b"Subject: unterminated\r\n\r\nline one\r\nno CRLF at the end"
EIGHT_BIT = (
    b"Subject: 8bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + "Grüße, ça va? 日本語\r\n".encode()
    + bytes(range(128, 256))
    + b"\r\n"
)
BIG = b"Subject: big\r\n\r\n" + b"".join(b".%06d %s\r\n" % (i, b"x" * 90) for i in range(1200))
MESSAGES = {"u1": DOTS, "u2": NO_CRLF, "u3": EIGHT_BIT, "u4": BIG}


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.1f}s")
        time.sleep(0.01)


class FakeBackend:
    """Messages in a dict; records every expunge and close."""

    def __init__(self):
        self.users = {"alice": (PASSWORD, MAILBOX)}
        self.store = {MAILBOX: dict(MESSAGES)}
        self.locked: set[str] = set()
        self.expunged: list[tuple[str, list[str]]] = []
        self.closed: list[str] = []
        self.fail_expunge = False
        self.fail_read = False
        self.gone: set[str] = set()

    async def authenticate(self, user, password):
        entry = self.users.get(user)
        return entry[1] if entry and entry[0] == password else None

    async def open(self, mailbox):
        if mailbox in self.locked:
            raise MailboxBusy(mailbox)
        self.locked.add(mailbox)
        return [MessageRef(uid, len(data)) for uid, data in self.store[mailbox].items()]

    async def read(self, mailbox, uid):
        if self.fail_read:
            raise RuntimeError("disk on fire")
        return None if uid in self.gone else self.store[mailbox].get(uid)

    async def expunge(self, mailbox, uids):
        if self.fail_expunge:
            raise OSError("journal unavailable")
        self.expunged.append((mailbox, list(uids)))
        for uid in uids:
            del self.store[mailbox][uid]

    async def close(self, mailbox):
        self.closed.append(mailbox)
        self.locked.discard(mailbox)


class ServerThread:
    """A Pop3Server on its own event loop in a background thread."""

    def __init__(self, backend, **kwargs):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = Pop3Server(
            backend, hostname="pop.test", auth_failure_delay=AUTH_DELAY, **kwargs
        )

    def call(self, coro, timeout=10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self):
        self.thread.start()
        self.call(self.server.start("127.0.0.1", 0))
        self.port = self.server.port

    def stop(self):
        try:
            self.call(self.server.stop(grace=1.0))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def backend():
    return FakeBackend()


@pytest.fixture
def make_server(backend):
    started = []

    def make(**kwargs):
        srv = ServerThread(backend, **kwargs)
        srv.start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def srv(make_server):
    return make_server()


@pytest.fixture
def connect():
    opened = []

    def make(srv):
        client = poplib.POP3("127.0.0.1", srv.port, timeout=10)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


@pytest.fixture
def raw():
    opened = []

    def make(srv):
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        rfile = sock.makefile("rb")
        opened.extend([rfile, sock])
        return sock, rfile

    yield make
    for thing in opened:
        thing.close()


def login(client, user="alice", password=PASSWORD):
    client.user(user)
    return client.pass_(password)


def expected_retr(data):
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def read_until_end(rfile):
    out = b""
    while not out.endswith(b"\r\n.\r\n"):
        chunk = rfile.readline()
        assert chunk, "connection closed mid-response"
        out += chunk
    return out


# -- retrieval -------------------------------------------------------------


def test_greeting_and_capa(srv, connect):
    client = connect(srv)
    assert client.getwelcome() == b"+OK pop.test POP3 ready"
    caps = client.capa()
    for cap in ("TOP", "UIDL", "USER", "PIPELINING", "RESP-CODES", "IMPLEMENTATION"):
        assert cap in caps
    assert "STLS" not in caps  # no tls_context
    client.quit()


def test_retr_round_trip_is_byte_exact(srv, connect, backend):
    client = connect(srv)
    assert login(client).startswith(b"+OK Logged in, 4 messages")
    for n, uid in enumerate(MESSAGES, 1):
        resp, lines, _ = client.retr(n)
        assert resp == b"+OK %d octets" % len(MESSAGES[uid])
        assert b"\r\n".join(lines) + b"\r\n" == expected_retr(MESSAGES[uid])
    client.quit()
    assert backend.expunged == []
    assert backend.closed == [MAILBOX]


def test_retr_wire_format_is_dot_stuffed(srv, raw, backend):
    backend.store[MAILBOX] = {"a": b".a\r\nb\r\n..c\nd\n.e"}
    sock, rfile = raw(srv)
    sock.sendall(f"USER alice\r\nPASS {PASSWORD}\r\nRETR 1\r\nQUIT\r\n".encode())
    size = len(backend.store[MAILBOX]["a"])
    assert [rfile.readline() for _ in range(3)][1:] == [
        b"+OK\r\n",
        b"+OK Logged in, 1 messages (%d octets)\r\n" % size,
    ]
    assert read_until_end(rfile) == b"+OK %d octets\r\n..a\r\nb\r\n...c\nd\n..e\r\n.\r\n" % size
    assert rfile.readline() == b"+OK pop.test POP3 server signing off\r\n"
    assert rfile.readline() == b""


def test_stat_list_uidl(srv, connect):
    client = connect(srv)
    login(client)
    total = sum(map(len, MESSAGES.values()))
    assert client.stat() == (4, total)
    resp, lines, _ = client.list()
    assert resp == b"+OK 4 messages (%d octets)" % total
    assert lines == [b"%d %d" % (n, len(d)) for n, d in enumerate(MESSAGES.values(), 1)]
    assert client.list(2) == b"+OK 2 %d" % len(NO_CRLF)
    assert client.uidl()[1] == [b"1 u1", b"2 u2", b"3 u3", b"4 u4"]
    assert client.uidl(3) == b"+OK 3 u3"
    for bad in ("5", "0", "x"):
        with pytest.raises(poplib.error_proto):
            client.list(bad)
    client.quit()


def test_top(srv, connect):
    client = connect(srv)
    login(client)
    assert client.top(1, 0)[1] == [b"From: bob@example.org", b"Subject: dots", b""]
    assert client.top(1, 2)[1] == [
        b"From: bob@example.org",
        b"Subject: dots",
        b"",
        b".leading dot",
        b"..two dots",
    ]
    assert b"\r\n".join(client.top(2, 99)[1]) + b"\r\n" == expected_retr(NO_CRLF)
    with pytest.raises(poplib.error_proto, match="Syntax"):
        client._shortcmd("TOP 1")
    client.quit()


def test_vanished_message_and_backend_error(srv, connect, backend, caplog):
    caplog.set_level(logging.DEBUG, logger=pop3.__name__)
    client = connect(srv)
    login(client)
    backend.gone.add("u1")
    with pytest.raises(poplib.error_proto, match="Message was removed"):
        client.retr(1)
    backend.fail_read = True
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        client.retr(2)
    assert client.noop() == b"+OK"
    client.quit()
    assert "RETR failed" in caplog.text and "disk on fire" in caplog.text
    assert PASSWORD not in caplog.text


# -- deletion --------------------------------------------------------------


def test_dele_quit_expunges_marked_uids(srv, connect, backend):
    client = connect(srv)
    login(client)
    client.dele(2)
    client.dele(4)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.retr(2)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        client.dele(2)
    assert client.stat() == (2, len(DOTS) + len(EIGHT_BIT))
    assert client.uidl()[1] == [b"1 u1", b"3 u3"]
    assert client.quit() == b"+OK pop.test POP3 server signing off"
    assert backend.expunged == [(MAILBOX, ["u2", "u4"])]
    assert backend.closed == [MAILBOX]


def test_dele_then_disconnect_does_not_expunge(srv, connect, backend):
    client = connect(srv)
    login(client)
    client.dele(1)
    client.close()
    wait_for(lambda: backend.closed == [MAILBOX])
    assert backend.expunged == []
    assert set(backend.store[MAILBOX]) == set(MESSAGES)


def test_rset_unmarks(srv, connect, backend):
    client = connect(srv)
    login(client)
    client.dele(1)
    assert client.rset() == b"+OK 4 messages (%d octets)" % sum(map(len, MESSAGES.values()))
    assert client.retr(1)[0].startswith(b"+OK")
    client.quit()
    assert backend.expunged == []


def test_failed_expunge_is_reported(srv, connect, backend):
    backend.fail_expunge = True
    client = connect(srv)
    login(client)
    client.dele(1)
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\] Deletions not committed"):
        client.quit()
    wait_for(lambda: backend.closed == [MAILBOX])
    assert "u1" in backend.store[MAILBOX]


# -- authorization ---------------------------------------------------------


def test_wrong_password_is_delayed_and_third_failure_closes(srv, connect, backend):
    client = connect(srv)
    for _attempt in range(3):
        client.user("alice")
        started = time.monotonic()
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
            client.pass_("wrong")
        assert time.monotonic() - started >= AUTH_DELAY
    with pytest.raises((poplib.error_proto, OSError)):
        client.noop()
    assert backend.locked == set()


def test_pass_without_user_and_transaction_commands_before_login(srv, connect):
    client = connect(srv)
    with pytest.raises(poplib.error_proto, match="USER first"):
        client.pass_(PASSWORD)
    with pytest.raises(poplib.error_proto, match="not valid in this state"):
        client.stat()
    assert login(client).startswith(b"+OK")
    client.quit()


def test_locked_mailbox_gets_in_use(srv, connect, backend):
    first, second = connect(srv), connect(srv)
    login(first)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        login(second)
    assert backend.locked == {MAILBOX} and backend.closed == []
    assert first.stat()[0] == 4
    first.quit()
    assert backend.closed == [MAILBOX]
    assert login(second).startswith(b"+OK")  # same connection may retry
    second.quit()


def test_plaintext_login_refused_off_loopback(make_server, connect, monkeypatch):
    monkeypatch.setattr(pop3, "_peer_is_loopback", lambda peername: False)
    client = connect(make_server())
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext authentication disallowed"):
        client.user("alice")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
        client.pass_(PASSWORD)
    client.quit()


def test_peer_is_loopback():
    assert pop3._peer_is_loopback(("127.0.0.1", 1))
    assert pop3._peer_is_loopback(("127.8.9.10", 1))
    assert pop3._peer_is_loopback(("::1", 1, 0, 0))
    assert pop3._peer_is_loopback(("::ffff:127.0.0.1", 1, 0, 0))
    assert not pop3._peer_is_loopback(("192.0.2.1", 1))
    assert not pop3._peer_is_loopback(("2001:db8::1", 1, 0, 0))
    assert not pop3._peer_is_loopback(None)


# -- STLS ------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"), "pop.test")


@pytest.fixture
def tls_server(make_server, certificate):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certificate)
    return make_server(tls_context=ctx)


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_stls_upgrades_and_resets_state(tls_server, connect, monkeypatch):
    monkeypatch.setattr(pop3, "_peer_is_loopback", lambda peername: False)
    client = connect(tls_server)
    assert "STLS" in client.capa()
    with pytest.raises(poplib.error_proto, match="Plaintext"):
        client.user("alice")
    assert client.stls(client_context()) == b"+OK Begin TLS negotiation"
    assert isinstance(client.sock, ssl.SSLSocket)
    assert "STLS" not in client.capa()
    with pytest.raises(poplib.error_proto, match="STLS not available"):
        client._shortcmd("STLS")
    login(client)
    _resp, lines, _ = client.retr(3)
    assert b"\r\n".join(lines) + b"\r\n" == EIGHT_BIT
    with pytest.raises(poplib.error_proto, match="not valid in this state"):
        client._shortcmd("STLS")
    client.quit()


def test_stls_forgets_user_given_before(tls_server, connect):
    client = connect(tls_server)
    client.user("alice")
    client.stls(client_context())
    with pytest.raises(poplib.error_proto, match="USER first"):
        client.pass_(PASSWORD)
    client.quit()


def test_stls_without_tls_context(srv, connect):
    client = connect(srv)
    with pytest.raises(poplib.error_proto, match="STLS not available"):
        client._shortcmd("STLS")
    client.quit()


# -- robustness ------------------------------------------------------------


def test_long_lines_and_garbage_keep_session_usable(srv, connect, raw):
    client = connect(srv)
    with pytest.raises(poplib.error_proto, match="Line too long"):
        client._shortcmd("NOOP " + "x" * 600)
    with pytest.raises(poplib.error_proto, match="Unknown command"):
        client._shortcmd("XYZZY plugh")
    with pytest.raises(poplib.error_proto, match="Unknown command"):
        client._shortcmd("")
    client.user("a" * 255)  # a 255-octet argument is fine
    login(client)
    assert client.noop() == b"+OK"
    client.quit()

    sock, rfile = raw(srv)
    rfile.readline()
    sock.sendall(b"NOOP " + b"y" * 100_000 + b"\r\n\xff\xfe\r\nCAPA\r\n")
    assert rfile.readline() == b"-ERR Line too long\r\n"
    assert rfile.readline() == b"-ERR Unknown command\r\n"
    assert rfile.readline() == b"+OK Capability list follows\r\n"


def test_pipelined_commands_answered_in_order(srv, raw, backend):
    sock, rfile = raw(srv)
    sock.sendall(
        f"user alice\r\npass {PASSWORD}\r\nstat\r\ndele 1\r\nlist 1\r\nuidl 2\r\nquit\r\n".encode()
    )
    replies = rfile.read().split(b"\r\n")
    assert replies == [
        b"+OK pop.test POP3 ready",
        b"+OK",
        b"+OK Logged in, 4 messages (%d octets)" % sum(map(len, MESSAGES.values())),
        b"+OK 4 %d" % sum(map(len, MESSAGES.values())),
        b"+OK Message 1 deleted",
        b"-ERR Message already deleted",
        b"+OK 2 u2",
        b"+OK pop.test POP3 server signing off",
        b"",
    ]
    assert backend.expunged == [(MAILBOX, ["u1"])]


def test_idle_timeout_closes_and_releases(make_server, raw, backend):
    sock, rfile = raw(make_server(idle_timeout=0.3))
    sock.sendall(f"USER alice\r\nPASS {PASSWORD}\r\n".encode())
    assert [rfile.readline() for _ in range(3)][2].startswith(b"+OK Logged in")
    assert rfile.readline() == b"-ERR Disconnected for inactivity\r\n"
    assert rfile.readline() == b""
    wait_for(lambda: backend.closed == [MAILBOX])
    assert backend.expunged == []


def test_stop_ends_idle_sessions_at_once(srv, connect, backend):
    client = connect(srv)
    login(client)
    client.dele(1)
    started = time.monotonic()
    srv.call(srv.server.stop(grace=5.0))
    assert time.monotonic() - started < 2.0
    assert backend.closed == [MAILBOX] and backend.expunged == []
    assert client.file.readline() == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    with pytest.raises(OSError):
        poplib.POP3("127.0.0.1", srv.port, timeout=2)


def test_metrics_hooks(make_server, connect):
    events = []

    class Recorder(pop3.Pop3Metrics):
        def session_started(self):
            events.append("start")

        def session_ended(self):
            events.append("end")

        def login_failed(self):
            events.append("fail")

        def retrieved(self, nbytes):
            events.append(nbytes)

    client = connect(make_server(metrics=Recorder()))
    client.user("alice")
    with pytest.raises(poplib.error_proto):
        client.pass_("nope")
    login(client)
    client.retr(2)
    client.top(1, 0)
    client.quit()
    wait_for(lambda: "end" in events)
    assert events == [
        "start",
        "fail",
        len(NO_CRLF),
        len(b"From: bob@example.org\r\nSubject: dots\r\n\r\n"),
        "end",
    ]


def test_commands_pipelined_behind_stls_are_discarded(tls_server, raw):
    sock, rfile = raw(tls_server)
    rfile.readline()
    sock.sendall(b"STLS\r\nUSER alice\r\n")  # the USER arrives in cleartext: must not count
    assert rfile.readline() == b"+OK Begin TLS negotiation\r\n"
    with (
        client_context().wrap_socket(sock, server_hostname="pop.test") as tls,
        tls.makefile("rb") as tfile,
    ):
        tls.sendall(f"PASS {PASSWORD}\r\nQUIT\r\n".encode())
        assert tfile.readline() == b"-ERR Send USER first\r\n"
        assert tfile.readline() == b"+OK pop.test POP3 server signing off\r\n"
