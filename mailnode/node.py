"""A mail node: its shards and its listeners, with start / serve / stop(grace)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import time

from mailnode import metrics
from mailnode.admin.service import start_grpc
from mailnode.cluster.agent import Agent, Standalone
from mailnode.cluster.router import Router
from mailnode.config import Config, ConfigError, parse_address
from mailnode.delivery.engine import DeliveryEngine
from mailnode.durable import makedirs_synced, write_atomic
from mailnode.frontend.imap import ImapFrontEnd
from mailnode.frontend.pop3 import Mailboxes, RoutedPop3Backend
from mailnode.http import start_http
from mailnode.imap.server import ImapServer
from mailnode.interfaces import ClusterView
from mailnode.lifecycle import start_stack
from mailnode.pop3.metrics import PromMetrics
from mailnode.pop3.server import Pop3Server
from mailnode.replication.roles import RoleManager
from mailnode.shard import Shard
from mailnode.shipping.shipper import Shipper
from mailnode.smtp.handler import MxHandler
from mailnode.smtp.protocol import MailSMTP
from mailnode.smtp.submission import SubmissionHandler, SubmissionSMTP
from mailnode.users import normalize, shard_of
from mailnode.wire import SECRET_KEY, SecretFileError, ensure_secret, read_secret, token_path

log = logging.getLogger(__name__)


def cluster_layout(data_dir: str, shards: int) -> int:
    """The shard count is fixed when the data directory is made; a config may not change it."""
    path = os.path.join(data_dir, "cluster.json")
    try:
        with open(path) as f:
            fixed = json.load(f)["shards"]
    except FileNotFoundError:
        makedirs_synced(data_dir)
        write_atomic(path, json.dumps({"shards": shards}).encode())
        return shards
    if fixed != shards:
        raise ConfigError(
            f"[node] shards = {shards}, but {data_dir} was created with {fixed} shards "
            "(the mailbox -> shard map cannot change)"
        )
    return fixed


class Node:
    def __init__(self, config: Config):
        self.config = config
        self.name = config.node.name
        self.hostname = config.node.hostname
        self.domains = frozenset(config.node.domains)
        self.data_dir = config.node.data_dir
        self.nshards = cluster_layout(self.data_dir, config.node.shards)
        self.token = ensure_secret(token_path(self.data_dir))
        self.advertise = config.grpc.advertise or config.grpc.listen
        self.cluster_secret = self._cluster_secret()
        # What this node's replication calls carry, and what it demands of others.
        self.cluster_metadata: tuple[tuple[str, str], ...] = (
            ((SECRET_KEY, self.cluster_secret),) if self.cluster_secret else ()
        )
        self.shards = {
            i: Shard(
                i,
                os.path.join(self.data_dir, "shards", str(i)),
                node_name=self.name,
                segment_size=config.journal.segment_size,
                checkpoint_interval=config.store.checkpoint_interval,
                replication=config.replication,
                follow=config.replication.follow,
                idle_when_new=bool(config.cluster.zookeeper),
            )
            for i in range(self.nshards)
        }
        self.roles = RoleManager(self)
        # The one place that decides whether this node is in a cluster: everything
        # else asks self.agent (agent.Agent or agent.Standalone), never "is None".
        self.agent: ClusterView = Standalone()
        if config.cluster.zookeeper:
            self.agent = Agent(
                self,
                hosts=config.cluster.zookeeper,
                root=config.cluster.root,
                session_timeout=config.cluster.session_timeout,
            )
            for shard in self.shards.values():
                # No commit is answered before ZooKeeper's in-sync set is known (F2).
                shard.replication.clustered = True
        self.router = Router(self, config.frontend.hold_timeout)
        self.mailboxes = Mailboxes(self)
        self.delivery = DeliveryEngine(self)
        self.shipper = Shipper(self)
        for shard in self.shards.values():
            shard.on_queue_change = self.delivery.wake
            if self.shipper.enabled and config.archive.remote_sync:
                shard.remote_wait = self.shipper.wait
        self.tls_context = self._tls_context()
        # Every node serves IMAP sessions whose shard it is primary of, whoever's
        # listener the client reached (frontend/imap.py).
        self.imap = ImapFrontEnd(
            self,
            auth_failure_delay=config.imap.auth_failure_delay,
            idle_timeout=config.imap.idle_timeout,
            stale_reads=config.imap.stale_reads,
        )
        for shard in self.shards.values():
            shard.on_mailbox_change = self.imap.hub.changed
        self._handler: MxHandler | None = None
        self._submission: SubmissionHandler | None = None
        self._stopped = asyncio.Event()
        self._lifecycle: contextlib.AsyncExitStack | None = None

    def _cluster_secret(self) -> str:
        path = self.config.replication.secret_file
        if not path:
            return ""
        try:
            return read_secret(path)
        except SecretFileError as e:
            raise ConfigError(f"{self.config.path}: [replication] secret_file {e}") from None

    def _tls_context(self) -> ssl.SSLContext | None:
        tls = self.config.tls
        if not tls.cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(tls.cert, tls.key)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(
                f"{self.config.path}: [tls] cannot load {tls.cert} / {tls.key}: {e}"
            ) from None
        return ctx

    # -- lookups used by the protocol handlers ------------------------------------------
    def shard_id(self, address: str) -> int:
        return shard_of(address, self.nshards)

    def shard_for(self, address: str) -> Shard:
        return self.shards[self.shard_id(address)]

    def user_exists(self, address: str) -> bool:
        return normalize(address) in self.shard_for(address).state.users

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start every part in order; each registers how it stops, so stop() is the exact
        reverse by construction and runs every step even if one fails. The mail
        listeners come last (and so close first), once everything they use is up."""
        self._lifecycle = await start_stack(self._start_parts)
        log.info(
            "node %s: serving SMTP on %s, %d shards",
            self.name,
            self.config.smtp.listen,
            self.nshards,
        )

    async def _start_parts(self, stack: contextlib.AsyncExitStack) -> None:
        loop = asyncio.get_running_loop()
        stack.callback(metrics.SMTP_SESSIONS.set, 0)
        for shard in self.shards.values():
            await asyncio.to_thread(shard.open)
            stack.push_async_callback(asyncio.to_thread, shard.stop)
            shard.start(loop)
        stack.push_async_callback(self.router.close)
        host, port = parse_address(self.config.grpc.listen, "[grpc] listen")
        grpc_server = await start_grpc(self, host, port)
        stack.push_async_callback(lambda: grpc_server.stop(self._grace))
        self.roles.start()
        stack.push_async_callback(self.roles.stop)
        await self.agent.start()
        stack.push_async_callback(self.agent.stop)
        if self.config.delivery.enabled:
            self.delivery.start()
        stack.push_async_callback(self.delivery.stop)
        self.shipper.start()
        stack.push_async_callback(self.shipper.stop)
        gauges = asyncio.create_task(self._update_gauges())
        stack.callback(gauges.cancel)
        # Closed first: new connections are refused, then transactions already in DATA
        # finish their commit while everything above is still running.
        stack.push_async_callback(self._drain_transactions)
        await self._start_smtp(stack, loop)
        await self._start_submission(stack, loop)
        await self._start_pop3(stack)
        await self._start_imap(stack)
        # /health and /ready last: a load balancer (or a test) that sees them answer finds
        # every listener up; on stop they go first, so it stops sending before anything closes.
        host, port = parse_address(self.config.http.listen, "[http] listen")
        http = await start_http(self, host, port)
        stack.push_async_callback(http.cleanup)

    _grace = 5.0  # set by stop(): how long draining steps may take

    async def _drain_transactions(self) -> None:
        # (Python 3.11's wait_closed() does not wait for open connections, so count them.)
        deadline = asyncio.get_running_loop().time() + self._grace
        while (  # noqa: ASYNC110 (two handlers' counters; no event to wait on)
            any(h is not None and h.inflight for h in (self._handler, self._submission))
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.02)

    def _listening(self, stack: contextlib.AsyncExitStack, server: asyncio.AbstractServer) -> None:
        stack.callback(server.close)

    async def _start_smtp(self, stack: contextlib.AsyncExitStack, loop) -> None:
        # aiosmtpd logs every command at INFO.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        handler = self._handler = MxHandler(self)
        cfg = self.config.smtp
        host, port = parse_address(cfg.listen, "[smtp] listen")

        def factory():
            return MailSMTP(
                handler,
                data_size_limit=cfg.max_message_size,
                hostname=self.hostname,
                ident="mailcluster ESMTP",
                timeout=cfg.timeout,
                tls_context=self.tls_context,
                loop=loop,
            )

        self._listening(stack, await loop.create_server(factory, host, port, reuse_address=True))

    async def _start_submission(self, stack: contextlib.AsyncExitStack, loop) -> None:
        sub = self.config.submission
        if not (sub.listen or sub.listen_tls):
            return
        backend = RoutedPop3Backend(self, local_only=not self.agent.clustered)
        handler = self._submission = SubmissionHandler(self, backend)
        cfg = self.config.smtp
        for listen, implicit in ((sub.listen, False), (sub.listen_tls, True)):
            if not listen:
                continue
            host, port = parse_address(
                listen, "[submission] listen_tls" if implicit else "[submission] listen"
            )

            def factory(implicit=implicit):
                return SubmissionSMTP(
                    handler,
                    implicit_tls=implicit,
                    data_size_limit=cfg.max_message_size,
                    hostname=self.hostname,
                    ident="mailcluster ESMTP submission",
                    timeout=cfg.timeout,
                    tls_context=self.tls_context,
                    loop=loop,
                )

            server = await loop.create_server(
                factory,
                host,
                port,
                reuse_address=True,
                ssl=self.tls_context if implicit else None,
            )
            self._listening(stack, server)
            log.info(
                "node %s: submission on %s (%s)",
                self.name,
                listen,
                "TLS" if implicit else "STARTTLS",
            )

    async def _start_pop3(self, stack: contextlib.AsyncExitStack) -> None:
        if not self.config.pop3.listen:
            return
        # In a cluster every node serves every mailbox through its shard's primary.
        backend = RoutedPop3Backend(self, local_only=not self.agent.clustered)
        pop3 = Pop3Server(
            backend,
            hostname=self.hostname,
            tls_context=self.tls_context,
            auth_failure_delay=self.config.pop3.auth_failure_delay,
            metrics=PromMetrics(),
        )
        host, port = parse_address(self.config.pop3.listen, "[pop3] listen")
        await pop3.start(host, port)
        stack.push_async_callback(lambda: pop3.stop(self._grace))

    async def _start_imap(self, stack: contextlib.AsyncExitStack) -> None:
        # Sessions piped here from other nodes end with the node, listeners or not.
        stack.push_async_callback(lambda: self.imap.stop(self._grace))
        imap = ImapServer(self.imap)
        stack.push_async_callback(lambda: imap.stop(self._grace))
        for key, implicit in (("listen", False), ("listen_tls", True)):
            listen = getattr(self.config.imap, key)
            if listen:
                host, port = parse_address(listen, f"[imap] {key}")
                await imap.start(host, port, implicit_tls=implicit)

    async def _update_gauges(self) -> None:
        while True:
            if self.agent.clustered:
                metrics.ZK_CONNECTED.set(1 if self.agent.connected else 0)
            for shard in self.shards.values():
                shard.update_gauges()
            # The queue's counts are index reads (a range count over a million queued
            # messages takes tens of milliseconds): never on the event loop, and at most
            # 5% of a core however big the queue grows.
            start = time.monotonic()
            await asyncio.to_thread(self.delivery.update_gauges)
            await asyncio.sleep(max(1.0, 20 * (time.monotonic() - start)))

    def healthy(self) -> tuple[bool, dict]:
        shards = {}
        ok = True
        for i, s in self.shards.items():
            failed = s.journal.failed
            ok = ok and failed is None
            shards[str(i)] = {
                "role": s.role,
                "epoch": s.epoch,
                "committed_lsn": s.journal.committed_lsn,
                "applied_lsn": s.applied_lsn,
                "journal": "failed" if failed else "ok",
            }
        return ok, {"node": self.name, "status": "ok" if ok else "failed", "shards": shards}

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT, then drain and stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopped.set)
        await self.start()
        print(f"mailnode {self.name}: ready", flush=True)
        await self._stopped.wait()
        log.info("node %s: stopping", self.name)
        await self.stop()

    async def stop(self, grace: float = 5.0) -> None:
        """Everything start() started, in reverse (see start)."""
        self._grace = grace
        stack, self._lifecycle = self._lifecycle, None
        if stack is not None:
            await stack.aclose()
