"""The delivery engine: works the queues of the shards this node is primary of.

Spares never act: they hold the same queue (derived from the same journal) and
take over where it stands when promoted. An attempt's outcome is a
DeliveryResult record, committed (and applied) before the entry is looked at
again, so a recipient the remote accepted with 250 is not sent again after a
restart. (A crash between the remote's 250 and that commit sends it once more:
the duplicate window of RFC 1047, a few milliseconds.)

Retries follow Postfix: the next attempt waits as long as the message has been
queued, clamped to [retry_initial, retry_max]; after ``lifetime`` a deferred
recipient bounces.
"""

from __future__ import annotations

import asyncio
import logging
import time

from mailnode import metrics
from mailnode.delivery import dsn
from mailnode.delivery.queue import QueueEntry
from mailnode.delivery.routes import Destination, NextHops, RouteError
from mailnode.delivery.smtpclient import BOUNCED, DEFERRED, DELIVERED, Outcome, SmtpClient
from mailnode.errors import Unavailable
from mailnode.interfaces import FrontEnd
from mailnode.proto.journal_pb2 import DeliveryResult, JournalRecord
from mailnode.smtp.handler import queue_id

log = logging.getLogger(__name__)

EXPIRED = DeliveryResult.EXPIRED
RESULT_NAMES: dict[int, str] = {
    DELIVERED: "delivered",
    DEFERRED: "deferred",
    BOUNCED: "bounced",
    EXPIRED: "expired",
}
MAX_DESTINATION_LABELS = 200  # per-destination metrics stop growing here ("other")
NS = 1_000_000_000
SCAN_INTERVAL = 0.02  # seconds between two looks at the queues, at least
FAILURE_BACKOFF = 30.0  # seconds before an attempt whose outcome could not be recorded is repeated


def human(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} seconds"


class DeliveryEngine:
    def __init__(self, node: FrontEnd):
        self.node = node
        cfg = self.cfg = node.config.delivery
        self.next_hops = NextHops(node, cfg)
        self.client = SmtpClient(
            helo=cfg.helo_name or node.hostname,
            timeout=cfg.timeout,
            connect_timeout=cfg.connect_timeout,
            starttls=cfg.starttls,
        )
        self._slots = asyncio.Semaphore(cfg.concurrency)
        self._per_destination: dict[str, asyncio.Semaphore] = {}
        self._running: dict[tuple[int, int], asyncio.Task] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._destination_labels: set[str] = set()
        self._failed_until: dict[
            tuple[int, int], float
        ] = {}  # attempts that went wrong: not before

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery")

    def wake(self) -> None:
        """Something changed (a new queue entry, a queue command, a promotion): look now."""
        self._wake.set()

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._running.values()] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the scheduler ------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            next_due = None
            now = time.time_ns()
            for shard in self.node.shards.values():
                if not shard.accepting or shard.journal.failed is not None:
                    continue
                due, later = self._due(shard, now)
                for entry in due:
                    if len(self._running) >= 2 * self.cfg.concurrency:  # the rest on a later look
                        later = now
                        break
                    self._running[(shard.id, entry.lsn)] = asyncio.create_task(
                        self._attempt(shard, entry)
                    )
                if later is not None and (next_due is None or later < next_due):
                    next_due = later
            # Wake for the next due entry, on news, and at least every second (role changes);
            # never more often than SCAN_INTERVAL, so a busy queue is not rescanned per commit.
            delay = 1.0 if next_due is None else min(1.0, max(0.0, (next_due - now) / NS))
            await asyncio.sleep(SCAN_INTERVAL)
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, delay - SCAN_INTERVAL))
            except TimeoutError:
                pass

    def _due(self, shard, now: int) -> tuple[list[QueueEntry], int | None]:
        """The entries to try now (from the index, by next attempt: never a scan of the
        whole queue), and when the next one falls due."""
        mono = time.monotonic()
        # Enough rows to fill the free slots past those running or backing off.
        limit = 2 * self.cfg.concurrency + len(self._running) + len(self._failed_until)
        rows = shard.state.queue_table.due(now, limit)
        due = [
            e
            for e in rows
            if (shard.id, e.lsn) not in self._running
            and self._failed_until.get((shard.id, e.lsn), 0) <= mono
        ]
        later = now if len(rows) == limit else shard.state.queue_table.next_due(now)
        return due, later

    # -- one queued message ---------------------------------------------------------------
    async def _attempt(self, shard, entry: QueueEntry) -> None:
        key = (shard.id, entry.lsn)
        ok = False
        try:
            async with self._slots:  # also bounds how many messages are read into memory
                record = await asyncio.to_thread(shard.read_queued, entry.lsn)
                body = record.WhichOneof("body")
                message = (
                    record.message_accepted
                    if body == "message_accepted"
                    else record.delivery_result.dsn
                )
                groups: dict[Destination, list[str]] = {}
                for rcpt in entry.pending:
                    groups.setdefault(self.next_hops.destination(rcpt), []).append(rcpt)
                # Every group finishes (recorded or not) before the entry may be looked at again.
                results = await asyncio.gather(
                    *(
                        self._deliver_group(shard, entry, message, dest, rcpts)
                        for dest, rcpts in groups.items()
                    ),
                    return_exceptions=True,
                )
            errors = [r for r in results if isinstance(r, BaseException)]
            for e in errors:
                if isinstance(e, asyncio.CancelledError):
                    raise e
            if errors:
                raise errors[0]
            ok = True
        except Unavailable as e:
            log.warning(
                "shard %d: queue %s: result not recorded (%s); tried again in %.0fs",
                shard.id,
                entry.queue_id,
                e,
                FAILURE_BACKOFF,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "shard %d: queue %s: delivery attempt failed; tried again in %.0fs",
                shard.id,
                entry.queue_id,
                FAILURE_BACKOFF,
            )
        finally:
            self._running.pop(key, None)
            if ok:
                self._failed_until.pop(key, None)
            else:  # whatever went wrong, not again at once: a remote that said 250 must not be flooded
                self._failed_until[key] = time.monotonic() + FAILURE_BACKOFF
            self.wake()

    def _semaphore(self, key: str) -> asyncio.Semaphore:
        sem = self._per_destination.get(key)
        if sem is None:
            if len(self._per_destination) > 10_000:  # forget idle destinations
                self._per_destination = {
                    k: v for k, v in self._per_destination.items() if v.locked()
                }
            sem = self._per_destination[key] = asyncio.Semaphore(self.cfg.destination_concurrency)
        return sem

    async def _deliver_group(
        self, shard, entry: QueueEntry, message, dest: Destination, rcpts: list[str]
    ) -> None:
        async with self._semaphore(dest.key):
            if not shard.accepting:
                return
            if dest.kind == "cluster":
                outcome = await self._to_shard(entry, message, dest, rcpts)
            else:
                try:
                    hosts = await self.next_hops.hosts(dest)
                except RouteError as e:
                    kind = BOUNCED if e.permanent else DEFERRED
                    outcome = Outcome({r: (kind, e.reply) for r in rcpts})
                else:
                    if not shard.accepting:  # the lease may have lapsed during the lookup (F5)
                        return
                    outcome = await self.client.send(hosts, entry.sender, rcpts, message.data)
        await self._record(shard, entry, message, dest, outcome)

    async def _to_shard(
        self, entry: QueueEntry, message, dest: Destination, rcpts: list[str]
    ) -> Outcome:
        """A mailbox of this cluster on another shard: a commit there, idempotent by queue id."""
        rec = JournalRecord()
        m = rec.message_accepted
        m.queue_id = f"{entry.queue_id}.Q{entry.lsn}"
        m.mail_from = entry.sender
        m.data = message.data
        m.client_address = message.client_address
        m.helo = message.helo
        results: dict[str, tuple[int, str]] = {}
        try:
            for rcpt in rcpts:
                exists, over = await self.node.router.lookup(dest.shard, rcpt)
                if not exists:
                    results[rcpt] = (BOUNCED, "550 5.1.1 user unknown in this cluster")
                elif over:
                    results[rcpt] = (DEFERRED, f"452 4.2.2 mailbox full (over quota: {over})")
                else:
                    m.recipients.append(rcpt)
            if m.recipients:
                await self.node.router.commit(dest.shard, rec)
        except Unavailable as e:
            return Outcome({r: (DEFERRED, f"451 4.3.2 {dest.key}: {e}") for r in rcpts}, dest.key)
        for rcpt in m.recipients:
            results[rcpt] = (DELIVERED, f"250 2.0.0 committed on {dest.key}")
        return Outcome(results, dest.key)

    # -- recording the outcome ------------------------------------------------------------
    async def _record(
        self, shard, entry: QueueEntry, message, dest: Destination, outcome: Outcome
    ) -> None:
        now = time.time_ns()
        age = (now - entry.arrival_ns) / NS
        expired = age >= self.cfg.lifetime
        rec = JournalRecord()
        r = rec.delivery_result
        r.message_lsn = entry.lsn
        r.destination = dest.key
        r.remote = outcome.remote
        failed: list[tuple[str, str, str]] = []
        delayed: list[tuple[str, str, str]] = []
        for rcpt, (result, reply) in outcome.results.items():
            if result == DEFERRED and expired:
                result, reply = EXPIRED, f"{reply} (delivery time expired after {human(age)})"
            item = r.recipients.add()
            item.address, item.outcome, item.reply = rcpt, result, reply
            if result in (BOUNCED, EXPIRED):
                failed.append((rcpt, reply, outcome.remote))
            elif result == DEFERRED:
                delayed.append((rcpt, reply, outcome.remote))
            metrics.DELIVERY_ATTEMPTS.labels(RESULT_NAMES[result]).inc()
        if delayed:
            # As long as the message has been queued, within [initial, max]: Postfix's back-off.
            wait = min(max(age, self.cfg.retry_initial), self.cfg.retry_max)
            r.next_attempt_ns = now + int(wait * NS)
            label = (
                dest.key
                if (
                    dest.key in self._destination_labels
                    or len(self._destination_labels) < MAX_DESTINATION_LABELS
                )
                else "other"
            )
            self._destination_labels.add(label)
            metrics.DEFERRALS.labels(label).inc(len(delayed))
        notice = None
        if failed:
            notice = self._notice(shard, entry, message, failed, delayed=False)
            kind = "bounce"
        elif (
            delayed
            and self.cfg.delay_warning
            and not entry.warned
            and age >= self.cfg.delay_warning
        ):
            notice = self._notice(shard, entry, message, delayed, delayed=True)
            r.delay_warned = True
            kind = "delay"
        if notice is not None:
            r.dsn.CopyFrom(notice)
            metrics.BOUNCES.labels(kind).inc()
        for rcpt, reply, _ in failed:
            log.info("shard %d: queue %s: <%s> bounced: %s", shard.id, entry.queue_id, rcpt, reply)
        for rcpt, (result, reply) in outcome.results.items():
            if result == DELIVERED:
                log.info(
                    "shard %d: queue %s: <%s> delivered via %s: %s",
                    shard.id,
                    entry.queue_id,
                    rcpt,
                    outcome.remote or dest.key,
                    reply,
                )
            elif result == DEFERRED and not expired:
                log.info(
                    "shard %d: queue %s: <%s> deferred: %s", shard.id, entry.queue_id, rcpt, reply
                )
        await shard.commit(rec, applied=True)

    def _notice(self, shard, entry: QueueEntry, message, recipients, *, delayed: bool):
        """The DSN to the envelope sender, or None for a null sender (no bounce of a bounce)."""
        if not entry.sender:
            log.info("shard %d: queue %s: no DSN for a null sender", shard.id, entry.queue_id)
            return None
        data = dsn.build(
            reporting_mta=self.node.hostname,
            queue_id=entry.queue_id,
            sender=entry.sender,
            arrival_ns=entry.arrival_ns,
            original=message.data,
            recipients=recipients,
            delayed=delayed,
            expires_after=human(self.cfg.lifetime),
        )
        m = JournalRecord().message_accepted
        m.queue_id = queue_id()
        m.mail_from = ""
        m.data = data
        m.client_address = "127.0.0.1"
        m.helo = self.node.hostname
        sender = entry.sender.lower()
        if (
            sender.rpartition("@")[2] in self.node.domains
            and self.node.shard_id(sender) == shard.id
        ):
            if sender in shard.state.users:
                m.recipients.append(sender)
            else:
                log.warning(
                    "shard %d: queue %s: DSN to unknown local sender <%s> dropped",
                    shard.id,
                    entry.queue_id,
                    sender,
                )
                return None
        else:
            m.relay_recipients.append(entry.sender)
        return m

    # -- gauges -------------------------------------------------------------------------
    def update_gauges(self) -> None:
        now = time.time_ns()
        for shard in self.node.shards.values():
            active, deferred, held, first = shard.state.queue_table.counts(now)
            oldest = 0.0 if first is None else max(0.0, (now - first) / NS)
            label = str(shard.id)
            metrics.QUEUE_DEPTH.labels(label, "active").set(active)
            metrics.QUEUE_DEPTH.labels(label, "deferred").set(deferred)
            metrics.QUEUE_DEPTH.labels(label, "held").set(held)
            metrics.QUEUE_OLDEST.labels(label).set(oldest)
