"""The node's admin gRPC service (used by mailctl): users and status.

Every call must carry the node's admin token (metadata ``x-mailcluster-token``,
file ``<data_dir>/admin.token``, mode 0600). User changes are journal records:
the reply comes once the record is durable and applied.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

import grpc

from mailnode.delivery.ops import ACTIONS, queue_op
from mailnode.durable import to_thread_to_the_end
from mailnode.errors import AlreadyExists, MailclusterError, NotFound, Refused, grpc_errors
from mailnode.frontend.service import ShardService
from mailnode.passwords import check as check_hash
from mailnode.passwords import hash_password
from mailnode.proto import (
    admin_pb2,
    admin_pb2_grpc,
    frontend_pb2_grpc,
    queue_pb2,
    replication_pb2_grpc,
)
from mailnode.proto.journal_pb2 import JournalRecord
from mailnode.replication.service import ReplicationService
from mailnode.shipping import backup
from mailnode.store import commands
from mailnode.store.mailboxes import SPECIAL_USE
from mailnode.store.verify import verify
from mailnode.users import check_address
from mailnode.wire import SERVER_OPTIONS, TOKEN_KEY

log = logging.getLogger(__name__)

QUEUE_HOLD = 5.0  # seconds a queue command waits for a shard without a primary
QUOTA_MAX = 2**63 - 1  # the index's integers are signed 64-bit
LIST_PAGE = 10_000  # users per ListUsers reply: ~300 kB, well under gRPC's 4 MB


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, node):
        self.node = node

    async def _authorize(self, context) -> None:
        given = dict(context.invocation_metadata()).get(TOKEN_KEY, "")
        if not hmac.compare_digest(given.encode(), self.node.token.encode()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad or missing admin token")

    async def _address(self, request, context, *, must_exist: bool) -> str:
        addr = check_address(request.address)  # AddressError is a Refused
        domain = addr.rpartition("@")[2]
        if domain not in self.node.domains:
            raise Refused(
                f"{domain} is not a domain of this cluster ({', '.join(sorted(self.node.domains))})"
            )
        exists = self.node.user_exists(addr)
        if must_exist and not exists:
            raise NotFound(f"no such user: {addr}")
        if not must_exist and exists:
            raise AlreadyExists(f"user exists: {addr}")
        return addr

    async def _password(self, request, context) -> str:
        if len(request.password) < 8:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "password must have at least 8 characters"
            )
        return await asyncio.to_thread(hash_password, request.password)

    async def _commit(self, addr: str, record: JournalRecord, context) -> admin_pb2.UserReply:
        shard = self.node.shard_for(addr)
        lsn = await shard.commit(record, applied=True)
        return admin_pb2.UserReply(address=addr, shard=shard.id, lsn=lsn)

    async def _store_password(self, request, context, *, new_user: bool) -> admin_pb2.UserReply:
        await self._authorize(context)
        addr = await self._address(request, context, must_exist=not new_user)
        rec = JournalRecord()
        body = rec.user_added if new_user else rec.password_changed
        body.address = addr
        body.password_hash = await self._password(request, context)
        if new_user:
            rec.user_added.folders.extend(sorted(SPECIAL_USE))
        log.info("%s %s", "adding user" if new_user else "changing password of", addr)
        return await self._commit(addr, rec, context)

    @grpc_errors
    async def AddUser(self, request, context):
        return await self._store_password(request, context, new_user=True)

    @grpc_errors
    async def SetPassword(self, request, context):
        return await self._store_password(request, context, new_user=False)

    @grpc_errors
    async def DeleteUser(self, request, context):
        await self._authorize(context)
        addr = await self._address(request, context, must_exist=True)
        rec = JournalRecord()
        rec.user_deleted.address = addr
        log.info("deleting user %s", addr)
        return await self._commit(addr, rec, context)

    @grpc_errors
    async def ListUsers(self, request, context):
        await self._authorize(context)

        limit = min(request.limit or LIST_PAGE, LIST_PAGE)

        def listing() -> admin_pb2.ListUsersReply:  # an index read: not on the loop
            rows = sorted(
                (a, s.id)
                for s in self.node.shards.values()
                for a in s.state.users.page(request.after, limit + 1)
            )
            reply = admin_pb2.ListUsersReply(more=len(rows) > limit)
            reply.users.extend(admin_pb2.UserReply(address=a, shard=i) for a, i in rows[:limit])
            return reply

        return await asyncio.to_thread(listing)

    async def _status(self, s) -> admin_pb2.ShardStatus:
        # count(*) of a million users is tens of milliseconds: off the loop
        return self._shard_status(s, await asyncio.to_thread(len, s.state.users))

    def _shard_status(self, s, users: int) -> admin_pb2.ShardStatus:
        st = admin_pb2.ShardStatus(
            shard=s.id,
            epoch=s.epoch,
            committed_lsn=s.journal.committed_lsn,
            applied_lsn=s.applied_lsn,
            segments=s.journal.segments,
            journal_bytes=s.journal.size,
            users=users,
            role=s.role,
            primary=s.primary_address,
            policy=s.replication.policy,
            degraded=s.role == "primary" and s.replication.degraded,
        )
        if s.role == "primary":
            for spare in s.replication.spares.values():
                nbytes, seconds = s.replication.lag(spare)
                st.spares.append(
                    admin_pb2.SpareStatus(
                        name=spare.name,
                        acked_lsn=spare.acked,
                        lag_bytes=nbytes,
                        lag_seconds=seconds,
                        in_sync=spare.in_sync,
                        connected=spare.connected,
                    )
                )
        return st

    @grpc_errors
    async def Status(self, request, context):
        await self._authorize(context)
        reply = admin_pb2.StatusReply(node=self.node.name)
        for s in list(self.node.shards.values()):
            reply.shards.append(await self._status(s))
        return reply

    async def _shard(self, request, context):
        shard = self.node.shards.get(request.shard)
        if shard is None:
            raise NotFound(f"no shard {request.shard} on {self.node.name}")
        return shard

    @grpc_errors
    async def Promote(self, request, context):
        await self._authorize(context)
        shard = await self._shard(request, context)
        sentence = await self.node.roles.promote(shard.id)
        return admin_pb2.RoleReply(sentence=sentence, status=await self._status(shard))

    @grpc_errors
    async def Demote(self, request, context):
        await self._authorize(context)
        shard = await self._shard(request, context)
        if request.primary == self.node.advertise:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a node cannot follow itself")
        sentence = await self.node.roles.demote(shard.id, request.primary)
        return admin_pb2.RoleReply(sentence=sentence, status=await self._status(shard))

    @grpc_errors
    async def Queue(self, request, context):
        await self._authorize(context)
        if request.action not in ("list", "show", *ACTIONS):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown queue action {request.action!r} (known: list, show, {', '.join(ACTIONS)})",
            )
        if request.action != "list" and not request.ids and not request.all:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name queue ids, or all")
        if request.action != "list":
            log.info("queue %s %s", request.action, "all" if request.all else " ".join(request.ids))

        async def one(n: int):
            shard = self.node.shards[n]
            if not self.node.agent.clustered and not shard.accepting:
                return None  # standalone: this node answers for the shards it is primary of
            req = queue_pb2.QueueRequest()
            req.CopyFrom(request)
            req.shard = n
            try:
                return await self.node.router.call_primary(
                    n, "Queue", req, lambda: queue_op(self.node, shard, req), hold=QUEUE_HOLD
                )
            except MailclusterError as e:
                return f"shard {n}: {e}"

        reply = queue_pb2.QueueReply()
        for result in await asyncio.gather(*(one(n) for n in sorted(self.node.shards))):
            if isinstance(result, str):
                reply.errors.append(result)
            elif result is not None:
                reply.entries.extend(result.entries)
                reply.headers = reply.headers or result.headers
        return reply

    @grpc_errors
    async def Backup(self, request, context):
        """A shard directory's worth of files: the store at an lsn, then the journal after it."""
        await self._authorize(context)
        shard = await self._shard(request, context)
        copy = await backup.take(shard)
        log.info("shard %d: backup at lsn %d, journal to %d", shard.id, copy.lsn, copy.end_lsn)
        async for p in backup.pieces(shard, copy, journal=True):
            yield admin_pb2.BackupChunk(
                path=p.path, offset=p.offset, data=p.data, end_of_file=p.end_of_file, lsn=copy.lsn
            )
        yield admin_pb2.BackupChunk(
            lsn=copy.lsn,
            end_lsn=copy.end_lsn,
            done=True,
            created_ns=copy.created_ns,
            shard=shard.id,
        )

    # -- mailboxes, quotas, bulk users, the index ------------------------------------------
    @grpc_errors
    async def Mailbox(self, request, context):
        await self._authorize(context)
        addr = await self._address(request, context, must_exist=True)
        shard = self.node.shard_for(addr)
        mb, a = shard.state.mailboxes, request.action
        await shard.caught_up()
        lsn = 0
        if a in FOLDER_ACTIONS:
            lsn = await commands.change_folder(shard, addr, a, request.folder, request.new_name)
        elif a == "flags":
            lsn = await commands.set_flags(
                shard, addr, request.folder, list(request.uids), request.mode, list(request.flags)
            )
        elif a in ("copy", "move"):
            lsn = await commands.copy(
                shard, addr, request.folder, list(request.uids), request.target, move=a == "move"
            )
        elif a == "expunge":
            lsn = await commands.expunge(shard, addr, request.folder, list(request.uids))
        elif a not in ("folders", "messages"):
            raise Refused(f"unknown mailbox action {a!r}")
        if a != "folders":
            log.info("mailbox %s: %s %s", addr, a, request.folder)
        reply = admin_pb2.MailboxReply(lsn=lsn)
        reply.folders.extend(_folder_pb(f) for f in await asyncio.to_thread(mb.folders, addr))
        if a == "messages" or (a not in FOLDER_ACTIONS and a != "folders"):
            folder = request.target if a in ("copy", "move") else request.folder or "INBOX"
            reply.messages.extend(
                _message_pb(m) for m in await asyncio.to_thread(mb.messages, addr, folder)
            )
        return reply

    @grpc_errors
    async def UserInfo(self, request, context):
        await self._authorize(context)
        addr = await self._address(request, context, must_exist=True)
        shard = self.node.shard_for(addr)
        st = shard.state
        messages, nbytes = await asyncio.to_thread(st.mailboxes.usage, addr)
        qbytes, qmessages = await asyncio.to_thread(st.quota, addr)
        reply = admin_pb2.UserInfoReply(
            address=addr,
            shard=shard.id,
            messages=messages,
            bytes=nbytes,
            quota_bytes=qbytes,
            quota_messages=qmessages,
        )
        reply.folders.extend(
            _folder_pb(f) for f in await asyncio.to_thread(st.mailboxes.folders, addr)
        )
        return reply

    @grpc_errors
    async def SetQuota(self, request, context):
        await self._authorize(context)
        scope = request.scope.lower()
        rec = JournalRecord()
        q = rec.quota_set
        q.scope, q.bytes, q.messages = scope, request.bytes, request.messages
        _check_quota(q.bytes, q.messages)
        if scope.startswith("@"):  # every shard this node is primary of carries the default
            if scope[1:] not in self.node.domains:
                raise Refused(f"{scope[1:]} is not a domain of this cluster")
            lsn = 0
            for shard in self.node.shards.values():
                if shard.accepting:
                    lsn = await shard.commit(rec, applied=True)
            log.info("quota of %s: %d bytes, %d messages", scope, q.bytes, q.messages)
            return admin_pb2.UserReply(address=scope, lsn=lsn)
        addr = await self._address(admin_pb2.UserRequest(address=scope), context, must_exist=True)
        q.scope = addr
        log.info("quota of %s: %d bytes, %d messages", addr, q.bytes, q.messages)
        return await self._commit(addr, rec, context)

    @grpc_errors
    async def ImportUsers(self, request, context):
        await self._authorize(context)
        shard = self.node.shards.get(request.shard)
        if shard is None:
            raise NotFound(f"no shard {request.shard} on {self.node.name}")

        def plan() -> tuple[JournalRecord, int, int, int]:
            """Checked against the committed index in one go (blocking)."""
            rec = JournalRecord()
            added = updated = unchanged = 0
            for u in request.users:
                addr = check_address(u.address)
                if addr.rpartition("@")[2] not in self.node.domains:
                    raise Refused(f"{addr}: not a domain of this cluster")
                if self.node.shard_id(addr) != shard.id:
                    raise Refused(
                        f"{addr} belongs to shard {self.node.shard_id(addr)}, not {shard.id}"
                    )
                why = check_hash(u.password_hash)
                if why:
                    raise Refused(f"{addr}: {why}")
                known = shard.state.users.get(addr)
                quota = (u.quota_bytes, u.quota_messages)
                _check_quota(*quota, who=f"{addr}: ")
                if known == u.password_hash and (
                    not u.has_quota or shard.state.quota(addr) == quota
                ):
                    unchanged += 1
                    continue
                added, updated = (added + 1, updated) if known is None else (added, updated + 1)
                rec.users_imported.users.add(
                    address=addr,
                    password_hash=u.password_hash,
                    folders=sorted(SPECIAL_USE) if known is None else [],
                )
                if u.has_quota:
                    rec.users_imported.quotas.add(scope=addr, bytes=quota[0], messages=quota[1])
            return rec, added, updated, unchanged

        rec, added, updated, unchanged = await asyncio.to_thread(plan)
        lsn = await shard.commit(rec, applied=True) if rec.users_imported.users else 0
        return admin_pb2.ImportReply(added=added, updated=updated, unchanged=unchanged, lsn=lsn)

    @grpc_errors
    async def Store(self, request, context):
        await self._authorize(context)
        shard = await self._shard(request, context)
        if request.action == "verify":
            report = await asyncio.to_thread(verify, shard)
            return admin_pb2.StoreReply(
                ok=report.problem_count == 0,
                problems=report.problems,
                mailboxes=report.mailboxes,
                messages=report.messages,
            )
        if request.action != "rebuild":
            raise Refused(f"unknown store action {request.action!r} (verify, rebuild)")
        if shard.journal.first_lsn != 0:
            raise Refused(
                f"shard {shard.id}: the journal starts at lsn {shard.journal.first_lsn} (older "
                "segments were removed once archived, or this spare began from a snapshot): the "
                "index cannot be rebuilt from it here; restore the shard from a backup instead"
            )
        log.warning("shard %d: rebuilding the store from the journal (mailctl)", shard.id)
        replayed = await to_thread_to_the_end(shard.rebuild_store)
        return admin_pb2.StoreReply(ok=True, replayed=replayed)

    @grpc_errors
    async def BaseBackup(self, request, context):
        """Make this node upload a base backup of the shard to the archive now."""
        await self._authorize(context)
        shard = await self._shard(request, context)
        if not self.node.shipper.enabled:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "no [archive] address configured"
            )
        try:
            info = await backup.upload_base(self.node, shard, self.node.shipper.stub())
        except grpc.aio.AioRpcError as e:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"archive: {e.code().name.lower()}: {e.details()}"
            )
        return admin_pb2.BaseBackupReply(lsn=info.lsn, bytes=info.bytes, files=info.files)


def _folder_pb(f) -> admin_pb2.FolderInfo:
    return admin_pb2.FolderInfo(
        name=f.name,
        uidvalidity=f.uidvalidity,
        uidnext=f.uidnext,
        highest_modseq=f.highest_modseq,
        subscribed=f.subscribed,
        messages=f.messages,
    )


def _message_pb(m) -> admin_pb2.MessageInfo:
    return admin_pb2.MessageInfo(
        uid=m.uid,
        name=m.name,
        size=m.size,
        flags=list(m.flags),
        modseq=m.modseq,
        internal_ns=m.internal_ns,
    )


FOLDER_ACTIONS = ("create", "rename", "delete", "subscribe", "unsubscribe")


async def start_grpc(node, host: str, port: int) -> grpc.aio.Server:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    admin_pb2_grpc.add_AdminServicer_to_server(AdminService(node), server)
    replication_pb2_grpc.add_ReplicationServicer_to_server(ReplicationService(node), server)
    frontend_pb2_grpc.add_ShardServicer_to_server(ShardService(node), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot listen on {host}:{port} for gRPC")
    await server.start()
    return server


def _check_quota(nbytes: int, messages: int, who: str = "") -> None:
    if nbytes > QUOTA_MAX or messages > QUOTA_MAX:
        raise Refused(f"{who}a quota above {QUOTA_MAX} is not a limit (0 means none)")
