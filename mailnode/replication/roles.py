"""Role changes of this node's shards: promote, demote, follow, fence.

Each returns the decision as a sentence, which is logged (and shown by mailctl).
In a cluster the agent drives them from ZooKeeper's assignment; on standalone
nodes an operator does, with ``mailctl shard promote|demote``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import grpc

from mailnode import metrics
from mailnode.errors import NotPrimary
from mailnode.interfaces import Peer
from mailnode.proto import replication_pb2 as pb
from mailnode.proto import replication_pb2_grpc
from mailnode.replication.follower import Follower

log = logging.getLogger(__name__)


class RoleManager:
    def __init__(self, node: Peer):
        self.node = node
        self.followers: dict[int, Follower] = {}
        self._fencing: dict[int, asyncio.Task] = {}
        self._hooks: set[asyncio.Task] = set()
        # One role change of a shard at a time: two demotes at once (two fence calls)
        # made the second start a follower while the first still waited for the old one
        # to finish a store rebuild, and the two appended to one journal.
        self._changing: dict[int, asyncio.Lock] = {}

    def _lock(self, shard_id: int) -> asyncio.Lock:
        return self._changing.setdefault(shard_id, asyncio.Lock())

    def start(self) -> None:
        for shard in self.node.shards.values():
            if shard.role == "spare" and shard.primary_address:
                self._follow(shard)

    async def stop(self) -> None:
        for task in self._fencing.values():
            task.cancel()
        for shard_id in list(self.followers):
            await self._unfollow(shard_id)

    def _follow(self, shard) -> None:
        f = Follower(self.node, shard)
        f.start(shard.primary_address)
        self.followers[shard.id] = f

    async def _unfollow(self, shard_id: int) -> None:
        f = self.followers.pop(shard_id, None)
        if f is not None:
            await f.stop()

    async def promote(self, shard_id: int, epoch: int = 0, reason: str = "by operator") -> str:
        """Make this node the shard's primary: at ``epoch`` when given (ZooKeeper assigns it),
        else at one past the highest epoch known here."""
        async with self._lock(shard_id):
            return await self._promote(shard_id, epoch, reason)

    async def _promote(self, shard_id: int, epoch: int, reason: str) -> str:
        shard = self.node.shards[shard_id]
        last = shard.journal.epochs[-1][0] if shard.journal.epochs else 0
        if shard.role == "primary" and (not epoch or epoch == shard.epoch):
            return f"{self.node.name} is already primary of shard {shard_id} (epoch {shard.epoch})"
        if epoch and epoch < last:
            sentence = (
                f"refused to promote {self.node.name} for shard {shard_id} at epoch {epoch}: "
                f"its journal is already at epoch {last}"
            )
            log.error("%s", sentence)
            return sentence
        old = shard.primary_address
        await self._unfollow(shard_id)
        shard.replication.forget_spares()
        shard.replication.degraded = False
        shard.replication.published = None  # what ZooKeeper says is in sync: the agent sets it
        # Spares of the new primary must hold its whole journal before they count as in sync.
        shard.replication.answered_end = shard.journal.committed_lsn
        if epoch and epoch == last:
            # Our own epoch, given back (after a self-fence or a restart that was not
            # followed by a failover).
            shard.become_primary(epoch)
            lsn = shard.journal.committed_lsn
        else:
            epoch = epoch or max(shard.epoch, last) + 1
            lsn = await shard.start_epoch(epoch)
        await asyncio.to_thread(shard.save_role)
        sentence = (
            f"promoted {self.node.name} to primary of shard {shard_id} at epoch {epoch} ({reason}; "
            f"journal end lsn {shard.journal.committed_lsn}, epoch starts at {lsn})"
        )
        if old:
            self._fencing[shard_id] = asyncio.create_task(self._fence(shard, old, epoch))
            sentence += f"; fencing the previous primary {old}"
        log.warning("%s", sentence)
        self.run_hook(shard, sentence)
        return sentence

    async def demote(
        self, shard_id: int, primary: str = "", epoch: int = 0, reason: str = "by operator"
    ) -> str:
        async with self._lock(shard_id):
            return await self._demote(shard_id, primary, epoch, reason)

    async def _demote(self, shard_id: int, primary: str, epoch: int, reason: str) -> str:
        shard = self.node.shards[shard_id]
        was = shard.role
        shard.become_spare(primary, epoch)
        shard.replication.fail_waiters(NotPrimary(f"shard {shard_id} demoted on {self.node.name}"))
        task = self._fencing.pop(shard_id, None)
        if task is not None:
            task.cancel()
        await asyncio.to_thread(shard.save_role)
        await self._unfollow(shard_id)
        if primary:
            self._follow(shard)
        sentence = (
            f"{self.node.name} is now a spare of shard {shard_id}"
            + (f" following {primary}" if primary else " (not following anyone yet)")
            + f" at epoch {shard.epoch}, was {was}: {reason}"
        )
        log.warning("%s", sentence)
        self.run_hook(shard, sentence)
        return sentence

    def run_hook(self, shard, sentence: str) -> None:
        """Run the role-change hook in the background: it never delays a role change."""
        hook = self.node.config.hooks.on_role_change
        if hook:
            task = asyncio.create_task(self._hook(hook, shard, sentence))
            self._hooks.add(task)
            task.add_done_callback(self._hooks.discard)

    async def _hook(self, hook: str, shard, sentence: str) -> None:
        cfg = self.node.config
        env = dict(
            os.environ,
            MAILCLUSTER_SHARD=str(shard.id),
            MAILCLUSTER_ROLE="primary"
            if shard.role == "primary"
            else ("spare" if shard.primary_address else "idle"),
            MAILCLUSTER_EPOCH=str(shard.epoch),
            MAILCLUSTER_NODE=self.node.name,
            MAILCLUSTER_PRIMARY=shard.primary_address or self.node.advertise,
            MAILCLUSTER_SMTP=cfg.smtp.listen,
            MAILCLUSTER_POP3=cfg.pop3.listen,
            MAILCLUSTER_HTTP=cfg.http.listen,
            MAILCLUSTER_REASON=sentence,
        )
        timeout = cfg.hooks.timeout
        try:
            proc = await asyncio.create_subprocess_exec(
                hook,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            metrics.HOOK_FAILURES.inc()
            log.error("shard %d: role-change hook %s could not start: %s", shard.id, hook, e)
            return
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            # The whole process group: a child left holding the output pipe would keep us waiting.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
            metrics.HOOK_FAILURES.inc()
            log.error("shard %d: role-change hook %s killed after %.0fs", shard.id, hook, timeout)
            return
        text = out.decode(errors="replace").strip()[-500:]
        if proc.returncode != 0:
            metrics.HOOK_FAILURES.inc()
            log.error(
                "shard %d: role-change hook %s exited %d: %s", shard.id, hook, proc.returncode, text
            )
        else:
            metrics.HOOKS_RUN.inc()
            log.info("shard %d: role-change hook %s done: %s", shard.id, hook, text)

    async def _fence(self, shard, old: str, epoch: int) -> None:
        """Tell the replaced primary, until it hears it, that it must follow us now."""
        req = pb.FenceRequest(
            shard=shard.id, epoch=epoch, primary=self.node.advertise, primary_node=self.node.name
        )
        delay = 0.2
        while shard.role == "primary" and shard.epoch == epoch:
            try:
                async with grpc.aio.insecure_channel(old) as channel:
                    reply = await replication_pb2_grpc.ReplicationStub(channel).Fence(
                        req, timeout=5, metadata=self.node.cluster_metadata
                    )
                log.warning(
                    "shard %d: fenced the previous primary %s (its journal ended at lsn %d)",
                    shard.id,
                    old,
                    reply.end_lsn,
                )
                return
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    log.error("shard %d: %s refused to be fenced: %s", shard.id, old, e.details())
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
