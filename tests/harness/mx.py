"""Loopback stand-ins for "the remote side" of outbound delivery.

``SinkServer`` is a real SMTP server (aiosmtpd) playing a remote MX whose answers
a test can change at any time, ``DnsServer`` a tiny authoritative UDP DNS server
(dnspython) to point MX lookups at it (harness.certs makes a certificate for the
sink's STARTTLS).  Servers listen on 127.0.0.0/8 only.

pytest runs with ``filterwarnings = ["error"]``: everything here closes its
sockets, transports and event loops itself, so no ResourceWarning is left to GC.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import select
import socket
import ssl
import threading
from typing import NamedTuple

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

__all__ = ["DnsServer", "SinkMessage", "SinkServer", "free_port"]


def _check_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"test servers listen on loopback only, not {host!r}")


def free_port(host: str, low: int = 20000, high: int = 30000) -> int:
    """A port in [low, high) that is free on host for both TCP and UDP right now."""
    _check_loopback(host)
    ports = list(range(low, high))
    random.shuffle(ports)
    for port in ports:
        try:
            # No SO_REUSEADDR: a port with TIME_WAIT leftovers counts as busy too.
            with (
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
            ):
                tcp.bind((host, port))
                udp.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no free port in [{low}, {high}) on {host}")


# -- SMTP sink -------------------------------------------------------------


class SinkMessage(NamedTuple):
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # exactly what came after DATA (dot-unstuffed, CRLF line ends)
    tls: bool  # the session was under STARTTLS when DATA arrived
    peer: tuple


RCPT_MODES = ("accept", "tempfail", "reject")
MODES = (*RCPT_MODES, "tempfail_data", "reject_data")

_RCPT_REPLIES = {
    "accept": "250 2.1.5 OK",
    "tempfail": "451 4.3.0 try again later",
    "reject": "550 5.1.1 no such user",
}
_DATA_REPLIES = {
    "tempfail_data": "451 4.3.0 try again later",
    "reject_data": "554 5.6.0 message rejected",
}


class _SinkHandler:
    """aiosmtpd hooks; runs on the sink's event-loop thread."""

    def __init__(self, sink: SinkServer):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        sink = self.sink
        if not getattr(envelope, "_sink_counted", False):  # one attempt per transaction
            envelope._sink_counted = True
            with sink._lock:
                sink._attempts += 1
        mode = sink.mode
        # dict() copies atomically under the GIL, while the test thread may be mutating it.
        overrides = {k.lower(): v for k, v in dict(sink.rcpt_modes).items()}
        mode = overrides.get(address.lower(), mode)
        if mode not in RCPT_MODES:
            mode = "accept"  # the DATA-stage modes accept every recipient
        if mode == "accept":
            envelope.rcpt_tos.append(address)
        return _RCPT_REPLIES[mode]

    async def handle_DATA(self, server, session, envelope):
        reply = _DATA_REPLIES.get(self.sink.mode)
        if reply is not None:
            return reply
        message = SinkMessage(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content,
            session.ssl is not None,
            session.peer,
        )
        with self.sink._lock:
            self.sink._messages.append(message)
        return "250 2.0.0 OK queued"


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP, keeping track of live connections so stop() can close them."""

    def __init__(self, sink: SinkServer, *args, **kwargs):
        self.sink = sink
        super().__init__(*args, **kwargs)

    def connection_made(self, transport) -> None:
        reentry = self._original_transport is not None  # called again after STARTTLS
        super().connection_made(transport)
        if not reentry:
            self.sink._connection_made(self, transport.get_extra_info("peername"))

    def connection_lost(self, error) -> None:
        try:
            super().connection_lost(error)
        finally:
            self.sink._connection_lost(self)


class _SinkController(Controller):
    """A Controller serving on a socket we bound ourselves.

    Binding in the test thread makes a busy port fail at once with OSError (the stock
    Controller would wait out ready_timeout), and lets port 0 pick a port.  Its
    readiness probe binds its source address first, so the sink can leave that one
    connection out of ``connections``.
    """

    def __init__(self, sink: SinkServer, sock: socket.socket, **kwargs):
        self.sink = sink
        self.sock = sock
        host, port = sock.getsockname()[:2]
        super().__init__(sink._handler, hostname=host, port=port, **kwargs)

    def factory(self):
        return _SinkSMTP(self.sink, self.handler, loop=self.loop, **self.SMTP_kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self.sock)

    def _trigger_server(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.bind((self.hostname, 0))
            peer = s.getsockname()[:2]
            with self.sink._lock:
                self.sink._probes.add(peer)
            try:
                s.connect((self.hostname, self.port))
                s.recv(1024)
            finally:
                with self.sink._lock:
                    self.sink._probes.discard(peer)


class SinkServer:
    """A remote MX on host:port whose answers follow ``mode`` and ``rcpt_modes``.

    ``messages``, ``attempts`` and ``connections`` survive stop()/start(): a test takes
    the MX down and back up and looks at everything it received.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls_cert: tuple[str, str] | None = None,
        hostname: str = "mx.sink.test",
    ):
        _check_loopback(host)
        self.host = host
        self.port = port  # 0 picks a port at the first start(), kept for restarts
        self.hostname = hostname  # given, so aiosmtpd does not ask socket.getfqdn()
        self.tls_cert = tls_cert
        self.rcpt_modes: dict[str, str] = {}
        self._mode = "accept"
        self._handler = _SinkHandler(self)
        self._lock = threading.Lock()
        self._messages: list[SinkMessage] = []
        self._attempts = 0
        self._connections = 0
        self._probes: set[tuple] = set()
        self._live: set[_SinkSMTP] = set()  # touched on the loop thread only
        self._idle: asyncio.Event | None = None
        self._controller: _SinkController | None = None

    # -- what tests set and read

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown sink mode {value!r}; one of {MODES}")
        self._mode = value

    @property
    def messages(self) -> list[SinkMessage]:
        """A snapshot: the list the test holds does not change under it."""
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> int:
        """Transactions that reached RCPT, whatever the answer."""
        with self._lock:
            return self._attempts

    @property
    def connections(self) -> int:
        """Connections accepted (the Controller's own readiness probe not counted)."""
        with self._lock:
            return self._connections

    def count_with(self, marker: bytes) -> int:
        return sum(marker in m.data for m in self.messages)

    def reset(self) -> None:
        """Forget received messages and zero the counters."""
        with self._lock:
            self._messages.clear()
            self._attempts = self._connections = 0

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def running(self) -> bool:
        return self._controller is not None

    # -- lifecycle

    def start(self) -> SinkServer:
        if self._controller is not None:
            return self
        tls_context = None
        if self.tls_cert is not None:
            tls_context = ssl.SSLContext(
                ssl.PROTOCOL_TLS_SERVER
            )  # verify_mode CERT_NONE: no client certs
            tls_context.load_cert_chain(*self.tls_cert)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Re-bind at once after stop(), whatever connections linger in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        controller = _SinkController(
            self,
            sock,
            server_hostname=self.hostname,
            tls_context=tls_context,
            require_starttls=False,
        )
        try:
            controller.start()
        except BaseException:
            self._shutdown(controller)
            sock.close()  # in case the server never took it over
            raise
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            self._shutdown(controller)

    def __enter__(self) -> SinkServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SinkServer {self.host}:{self.port} mode={self.mode} {'up' if self.running else 'down'}>"

    # -- internals

    def _connection_made(self, proto: _SinkSMTP, peer) -> None:
        self._live.add(proto)
        with self._lock:
            if peer in self._probes:
                self._probes.discard(peer)
            else:
                self._connections += 1

    def _connection_lost(self, proto: _SinkSMTP) -> None:
        self._live.discard(proto)
        if not self._live and self._idle is not None:
            self._idle.set()

    async def _close_all(self, server: asyncio.AbstractServer | None) -> None:
        """On the loop: stop listening, drop every client, wait for their connection_lost."""
        if server is not None:
            server.close()  # closes the listening socket now: new connects are refused
        self._idle = asyncio.Event()
        for proto in list(self._live):
            # The raw TCP transport even after STARTTLS; abort() skips TLS close_notify.
            transport = proto._original_transport or proto.transport
            if transport is None:
                self._live.discard(proto)
            else:
                transport.abort()
        if self._live:
            try:
                await asyncio.wait_for(self._idle.wait(), 5)
            except TimeoutError:
                pass
        self._idle = None

    def _shutdown(self, controller: _SinkController) -> None:
        """Stop whatever part of ``controller`` got started; never raises."""
        loop = controller.loop
        thread = controller._thread
        if thread is not None and thread.is_alive() and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._close_all(controller.server), loop).result(
                    10
                )
            except Exception:
                pass
        try:
            controller.stop(no_assert=True)  # cancels leftover tasks, stops and closes the loop
        except Exception:
            pass
        if not loop.is_closed() and not loop.is_running():
            loop.close()  # the thread died before reaching loop.close() (e.g. a failed start)


# -- DNS -------------------------------------------------------------------


def _name(name: str) -> dns.name.Name:
    # from_text() makes names absolute; Name compares and hashes case-insensitively.
    return dns.name.from_text(name)


class DnsServer:
    """An authoritative UDP DNS server for the records given to add()."""

    def __init__(self, host: str, port: int):
        _check_loopback(host)
        self.host = host
        self.port = port  # 0 picks a port at the first start(), kept for restarts
        self._lock = threading.Lock()
        self._zone: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        self._sock: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None
        self.queries = 0

    def add(self, name: str, rdtype: str, value: str, ttl: int = 60) -> None:
        """add("remote.test", "MX", "10 mx1.remote.test."); adding again makes an RRset."""
        owner = _name(name)
        kind = dns.rdatatype.from_text(rdtype)
        # origin=root, relativize=False: names inside the data come out absolute,
        # with or without their trailing dot.
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, kind, value, origin=dns.name.root, relativize=False
        )
        with self._lock:
            rrsets = self._zone.setdefault(owner, {})
            rrset = rrsets.get(kind)
            if rrset is None:
                rrset = rrsets[kind] = dns.rrset.RRset(owner, dns.rdataclass.IN, kind)
            rrset.add(rdata, ttl)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Drop one type of record of name, or the whole name (then NXDOMAIN)."""
        owner = _name(name)
        with self._lock:
            if rdtype is None:
                self._zone.pop(owner, None)
            else:
                self._zone.get(owner, {}).pop(dns.rdatatype.from_text(rdtype), None)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> DnsServer:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._wake = (
            socket.socketpair()
        )  # stop() writes to it: select() wakes without a timeout loop
        self._thread = threading.Thread(
            target=self._serve, name=f"dns-{self.host}:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._wake[1].send(b"x")
        except OSError:
            pass
        thread.join(10)
        for s in (self._sock, *self._wake):
            s.close()
        self._sock = self._wake = None

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self) -> None:
        sock, wake = self._sock, self._wake[0]
        while True:
            try:
                readable, _, _ = select.select([sock, wake], [], [])
                if wake in readable:
                    return
                wire, client = sock.recvfrom(65535)
            except OSError:
                return
            try:
                reply = self._answer(wire)
            except Exception:
                continue  # not a DNS query we can parse: drop it, as a server would
            try:
                sock.sendto(reply, client)
            except OSError:
                pass

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        self.queries += 1
        with self._lock:
            for question in query.question:
                rrsets = self._zone.get(question.name)
                if rrsets is None:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                    continue
                rrset = rrsets.get(question.rdtype)
                if rrset is not None:  # else NOERROR, empty answer ("NoAnswer")
                    answer = dns.rrset.RRset(question.name, rrset.rdclass, rrset.rdtype)
                    answer.update(rrset)  # a copy, owner spelled as asked
                    answer.ttl = rrset.ttl
                    response.answer.append(answer)
        return response.to_wire()
