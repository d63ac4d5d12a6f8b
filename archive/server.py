"""The archive process: every shard's journal, byte for byte, as its primaries ship it.

What it accepts it has checked: each frame's checksum and lsn, continuity with
what it holds (no gap), epochs never going back (a fenced primary's late upload
is refused), and a resent range identical to what it acknowledged (a rewrite is
refused). A shipper that reconnects starts again from the end the archive
reports. Frames are group-committed with fdatasync (the node's Journal class)
before they are acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal

import grpc
from aiohttp import web
from prometheus_client import Counter, Gauge

from mailnode.config import parse_address
from mailnode.durable import fsync_dir, write_atomic
from mailnode.http import base_app, serve_app
from mailnode.journal import Journal
from mailnode.journal.format import BadFrame, iter_frames, list_segments, parse_frame, read_range
from mailnode.journal.journal import JournalDamaged
from mailnode.lifecycle import start_stack
from mailnode.proto import archive_pb2 as pb
from mailnode.proto import archive_pb2_grpc
from mailnode.replication.snapshot import file_chunks, write_chunk
from mailnode.tls import server_credentials
from mailnode.wire import SERVER_OPTIONS, ServicerContext

log = logging.getLogger(__name__)

END_LSN = Gauge("mailcluster_archive_end_lsn", "End of the archived journal", ["shard"])
STORED_BYTES = Gauge("mailcluster_archive_bytes", "Bytes of archived journal", ["shard"])
DISK_BYTES = Gauge("mailcluster_archive_disk_used_bytes", "Bytes used on the archive's filesystem")
DISK_FREE = Gauge("mailcluster_archive_disk_free_bytes", "Bytes free on the archive's filesystem")
REFUSED = Counter("mailcluster_archive_refused_total", "Uploads refused, by reason", ["reason"])
RECEIVED = Counter("mailcluster_archive_received_bytes_total", "Journal bytes accepted", ["shard"])


MAX_SHARDS = 4096


class Refusal(Exception):
    """What the archive refuses of a shipper, with its own gRPC status and the metric's
    reason (not the product's errors.Refused: this one never leaves the Archive service)."""

    def __init__(self, reason: str, detail: str, code=grpc.StatusCode.FAILED_PRECONDITION):
        super().__init__(detail)
        self.reason, self.detail, self.code = reason, detail, code


class ShardArchive:
    def __init__(self, shard: int, directory: str, segment_size: int):
        self.shard = shard
        self.epoch_path = os.path.join(directory, "epoch.json")
        self.journal = Journal(os.path.join(directory, "journal"), segment_size=segment_size)
        self.epoch = 0  # the highest epoch of a shipper or a record seen: lower ones are fenced
        self.record_epoch = 0  # epoch of the last archived record: the log never goes back
        self.last_node = ""
        self.lock = asyncio.Lock()  # one upload at a time per shard

    def open(self, loop) -> None:
        rec = self.journal.open()
        self.epoch = self.record_epoch = rec.epoch
        try:  # the highest shipper epoch seen, which may be past the last record's
            with open(self.epoch_path) as f:
                self.epoch = max(self.epoch, int(json.load(f)["epoch"]))
        except (FileNotFoundError, ValueError, KeyError):
            pass
        self.journal.start(loop)
        self.gauges()

    def gauges(self) -> None:
        END_LSN.labels(str(self.shard)).set(self.journal.committed_lsn)
        STORED_BYTES.labels(str(self.shard)).set(self.journal.size)

    def position(self) -> pb.ShipReply:
        return pb.ShipReply(
            end_lsn=self.journal.committed_lsn, first_lsn=self.journal.first_lsn, epoch=self.epoch
        )

    def hello(self, epoch: int, node: str) -> None:
        if epoch < self.epoch:
            raise Refusal(
                "stale_epoch",
                f"shard {self.shard}: {node} ships at epoch {epoch}, the archive has "
                f"seen epoch {self.epoch}: a fenced primary's upload is refused",
            )
        if epoch > self.epoch:
            self.epoch = epoch
            write_atomic(self.epoch_path, json.dumps({"epoch": epoch}).encode())

    async def accept(self, start: int, data: bytes, epoch: int, node: str) -> None:
        """Check and append whole frames; returns once they are durable."""
        if (
            self.journal.committed_lsn == 0
            and self.journal.first_lsn == 0
            and not list_segments(self.journal.directory)
            and start > 0
        ):
            # The shipper's journal starts after a snapshot: the archive starts there too.
            await asyncio.to_thread(self.journal.reset, start, [])
        end = self.journal.committed_lsn
        if start > end:
            raise Refusal(
                "gap",
                f"shard {self.shard}: frames start at lsn {start}, the archive ends at {end}",
                grpc.StatusCode.OUT_OF_RANGE,
            )
        if start < self.journal.first_lsn:
            raise Refusal(
                "before_start",
                f"shard {self.shard}: lsn {start} is before the archive's first "
                f"lsn {self.journal.first_lsn}",
            )
        off, last = 0, None
        while off < len(data):
            try:
                fr = parse_frame(data, off, start)
            except BadFrame as e:
                raise Refusal(
                    "bad_frame",
                    f"shard {self.shard}: frame at lsn {start + off}: {e.reason}",
                    grpc.StatusCode.INVALID_ARGUMENT,
                ) from None
            raw = data[off : off + fr.size]
            if fr.lsn < end:  # a resend of an acknowledged range: must be identical
                have = await asyncio.to_thread(
                    read_range, self.journal.directory, fr.lsn, end, fr.size
                )
                if have[: fr.size] != raw:
                    raise Refusal(
                        "rewrite",
                        f"shard {self.shard}: {node} sends different bytes at lsn {fr.lsn}, "
                        f"which the archive acknowledged (epoch {self.epoch}); refused",
                    )
            else:
                if not self.record_epoch <= fr.record.epoch <= epoch:
                    raise Refusal(
                        "bad_epoch",
                        f"shard {self.shard}: record at lsn {fr.lsn} has epoch "
                        f"{fr.record.epoch}; the log is at epoch {self.record_epoch} and "
                        f"the shipper at {epoch}",
                    )
                if (
                    fr.record.epoch > self.record_epoch
                    and fr.lsn != self.journal.first_lsn
                    and fr.record.WhichOneof("body") != "epoch_started"
                ):
                    # A new epoch begins with its EpochStarted right where the old one ended;
                    # anything else continues a history this archive does not hold.
                    raise Refusal(
                        "diverged",
                        f"shard {self.shard}: {node}'s epoch {fr.record.epoch} continues at "
                        f"lsn {fr.lsn} without starting there: its history and the archive's "
                        f"differ",
                    )
                self.record_epoch = fr.record.epoch
                last = self.journal.append_frame(fr.lsn, raw, fr.record)
            off += fr.size
        if last is not None:
            await last
            RECEIVED.labels(str(self.shard)).inc(self.journal.committed_lsn - end)
            self.last_node = node
            self.gauges()


def _write_piece(root: str, chunk) -> None:
    try:
        write_chunk(root, chunk)  # fsync'd as a whole before the base backup is installed
    except ValueError as e:
        raise Refusal("bad_path", str(e), grpc.StatusCode.INVALID_ARGUMENT) from None


def _du(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(root) for n in names)


class ArchiveService(archive_pb2_grpc.ArchiveServicer):
    def __init__(self, archive: Archive):
        self.archive = archive

    async def Ship(self, request_iterator, context):
        try:
            async for req in request_iterator:
                shard = self.archive.shard(req.shard)
                async with shard.lock:  # two shippers (an old primary, a new one) take turns
                    shard.hello(req.epoch, req.node)
                    if req.data:
                        await shard.accept(req.start_lsn, req.data, req.epoch, req.node)
                    else:
                        log.info(
                            "shard %d: %s ships at epoch %d; the archive ends at lsn %d",
                            req.shard,
                            req.node,
                            req.epoch,
                            shard.journal.committed_lsn,
                        )
                    reply = shard.position()
                yield reply
        except Refusal as e:
            REFUSED.labels(e.reason).inc()
            log.warning("%s", e.detail)
            await context.abort(e.code, e.detail)

    async def Fetch(self, request, context: ServicerContext):
        shard = self.archive.shards.get(request.shard)
        if shard is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"the archive has nothing of shard {request.shard}"
            )
        pos = max(request.from_lsn, shard.journal.first_lsn)
        end = (
            shard.journal.committed_lsn
            if not request.until_lsn
            else min(request.until_lsn, shard.journal.committed_lsn)
        )
        if request.from_lsn < shard.journal.first_lsn:
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"shard {request.shard}: the archive starts at lsn {shard.journal.first_lsn}",
            )
        while pos < end:
            data = await asyncio.to_thread(read_range, shard.journal.directory, pos, end, 1 << 20)
            if not data:  # an until_lsn inside a frame: nothing whole is left
                break
            yield pb.FetchChunk(start_lsn=pos, data=data)
            pos += len(data)

    async def PutBase(self, request_iterator, context: ServicerContext):
        staging, info, files = None, None, 0
        try:
            async for chunk in request_iterator:
                shard = self.archive.shard(chunk.shard)
                if staging is None:
                    async with shard.lock:
                        shard.hello(chunk.epoch, chunk.node)  # a fenced primary's base is refused
                    staging = os.path.join(
                        self.archive.base_root(chunk.shard), f".incoming-{chunk.lsn}-{id(chunk)}"
                    )
                    await asyncio.to_thread(os.makedirs, staging, exist_ok=True)
                if chunk.done:
                    info = pb.BaseInfo(
                        shard=chunk.shard,
                        lsn=chunk.lsn,
                        created_ns=chunk.created_ns,
                        files=files,
                        node=chunk.node,
                    )
                    break
                await asyncio.to_thread(_write_piece, staging, chunk)
                files += chunk.end_of_file
            if info is None or staging is None:  # a done chunk comes after the staging set-up
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the base backup ended early")
            info.bytes = await asyncio.to_thread(_du, staging)
            await asyncio.to_thread(self.archive.keep_base, shard, staging, info)
            log.info(
                "shard %d: base backup at lsn %d from %s (%d files, %d bytes)",
                info.shard,
                info.lsn,
                info.node,
                info.files,
                info.bytes,
            )
            return info
        except Refusal as e:
            REFUSED.labels(e.reason).inc()
            await context.abort(e.code, e.detail)
        finally:
            if staging is not None:  # gone already after a successful install
                await asyncio.to_thread(shutil.rmtree, staging, True)

    async def GetBase(self, request, context):
        bases = [
            b
            for b in self.archive.bases(request.shard)
            if not request.until_ns or b.created_ns <= request.until_ns
        ]
        if not bases:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no base backup of shard {request.shard}"
                + (" made before that time" if request.until_ns else ""),
            )
        base = bases[-1]
        root = os.path.join(self.archive.base_root(request.shard), str(base.lsn))
        async for rel, offset, data, last in file_chunks(root, skip="base.json"):
            yield pb.BaseChunk(
                shard=request.shard,
                lsn=base.lsn,
                path=rel,
                offset=offset,
                data=data,
                end_of_file=last,
                created_ns=base.created_ns,
            )
        yield pb.BaseChunk(
            shard=request.shard, lsn=base.lsn, done=True, created_ns=base.created_ns, node=base.node
        )

    async def Status(self, request, context):
        reply = pb.StatusReply(name=self.archive.name)
        for n in sorted(self.archive.shards):
            s = self.archive.shards[n]
            reply.shards.append(
                pb.ShardArchive(
                    shard=n,
                    first_lsn=s.journal.first_lsn,
                    end_lsn=s.journal.committed_lsn,
                    epoch=s.epoch,
                    segments=len(list_segments(s.journal.directory)),
                    bytes=s.journal.size,
                    last_node=s.last_node,
                    bases=self.archive.bases(n),
                )
            )
        return reply

    async def Verify(self, request, context):
        reply = pb.VerifyReply()
        for n in sorted(self.archive.shards):
            reply.results.append(await asyncio.to_thread(self.archive.verify, n))
        return reply


class Archive:
    def __init__(self, cfg):
        self.cfg = cfg
        self.name = cfg.name
        self.root = os.path.join(cfg.data_dir, "shards")
        self.shards: dict[int, ShardArchive] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lifecycle: contextlib.AsyncExitStack | None = None
        self._grace = 5.0  # set by stop(): how long the gRPC server may drain

    def shard(self, n: int) -> ShardArchive:
        if n >= MAX_SHARDS:
            raise Refusal(
                "bad_shard",
                f"no shard {n} here (at most {MAX_SHARDS})",
                grpc.StatusCode.INVALID_ARGUMENT,
            )
        s = self.shards.get(n)
        if s is None:
            s = ShardArchive(n, os.path.join(self.root, str(n)), self.cfg.segment_size)
            s.open(self._loop)
            self.shards[n] = s
        return s

    # -- base backups and retention ------------------------------------------------------
    def base_root(self, n: int) -> str:
        return os.path.join(self.cfg.data_dir, "base", str(n))

    def bases(self, n: int) -> list[pb.BaseInfo]:
        """Whole base backups of a shard, oldest first."""
        out: list[pb.BaseInfo] = []
        try:
            names = os.listdir(self.base_root(n))
        except FileNotFoundError:
            return out
        for name in names:
            if name.isdigit():
                try:
                    with open(os.path.join(self.base_root(n), name, "base.json")) as f:
                        doc = json.load(f)
                except (OSError, ValueError):
                    continue
                out.append(pb.BaseInfo(**doc))
        return sorted(out, key=lambda b: b.lsn)

    def keep_base(self, shard: ShardArchive, staging: str, info: pb.BaseInfo) -> None:
        """Install a received base backup, then apply the retention (blocking)."""
        if info.lsn > shard.journal.committed_lsn:
            raise Refusal(
                "base_ahead",
                f"shard {info.shard}: base backup at lsn {info.lsn}, beyond the archived "
                f"journal's end {shard.journal.committed_lsn}",
            )
        with open(os.path.join(staging, "base.json"), "w") as f:
            json.dump(
                {
                    "shard": info.shard,
                    "lsn": info.lsn,
                    "created_ns": info.created_ns,
                    "bytes": info.bytes,
                    "files": info.files,
                    "node": info.node,
                },
                f,
            )
        for dirpath, _, names in os.walk(staging):
            for name in names:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        final = os.path.join(self.base_root(info.shard), str(info.lsn))
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(staging, final)
        fsync_dir(self.base_root(info.shard))
        self.apply_retention(info.shard)

    def apply_retention(self, n: int) -> None:
        """Keep the newest keep_bases base backups, and the journal from the oldest kept one on."""
        bases = self.bases(n)
        if not bases:
            return  # without a base backup every byte of journal is needed for a restore
        drop, keep = bases[: -self.cfg.keep_bases], bases[-self.cfg.keep_bases :]
        for b in drop:
            shutil.rmtree(os.path.join(self.base_root(n), str(b.lsn)), ignore_errors=True)
        removed = self.shards[n].journal.remove_before(keep[0].lsn)
        if drop or removed:
            log.info(
                "shard %d: retention: %d base backups and %d journal segments removed; the journal "
                "starts at lsn %d",
                n,
                len(drop),
                removed,
                self.shards[n].journal.first_lsn,
            )

    def verify(self, n: int) -> pb.VerifyResult:
        """Every frame of every stored segment, read back from disk (blocking)."""
        s = self.shards[n]
        result = pb.VerifyResult(shard=n, segments=len(list_segments(s.journal.directory)))
        expected = s.journal.first_lsn
        try:
            for fr in iter_frames(s.journal.directory, s.journal.first_lsn):
                if fr.lsn != expected:
                    raise JournalDamaged(s.journal.directory, fr.lsn, f"gap before lsn {fr.lsn}")
                result.records += 1
                expected = fr.lsn + fr.size
            if expected != s.journal.committed_lsn:
                result.error = (
                    f"readable frames end at lsn {expected}, "
                    f"{s.journal.committed_lsn - expected} bytes after it do not check out"
                )
        except (OSError, JournalDamaged) as e:
            result.error = str(e)
        result.end_lsn = expected
        return result

    # -- lifecycle: start / serve / stop(grace), as the node's ------------------------
    async def start(self) -> None:
        """Open what is archived and listen; every step registers its undoing, so stop()
        is the reverse by construction and runs every step even if one fails."""
        self._lifecycle = await start_stack(self._start_parts)

    async def _start_parts(self, stack: contextlib.AsyncExitStack) -> None:
        self._loop = asyncio.get_running_loop()
        os.makedirs(self.root, exist_ok=True)
        stack.push_async_callback(self._close_journals)  # those opened since too
        for name in sorted(os.listdir(self.root)):
            if name.isdigit():
                self.shard(int(name))
                await asyncio.to_thread(self.apply_retention, int(name))
        server = grpc.aio.server(options=SERVER_OPTIONS)
        archive_pb2_grpc.add_ArchiveServicer_to_server(ArchiveService(self), server)
        if self.cfg.tls_ca:
            port = server.add_secure_port(
                self.cfg.listen,
                server_credentials(self.cfg.tls_ca, self.cfg.tls_cert, self.cfg.tls_key),
            )
        else:
            port = server.add_insecure_port(self.cfg.listen)
        if port == 0:
            raise OSError(f"cannot listen on {self.cfg.listen}")
        await server.start()
        stack.push_async_callback(lambda: server.stop(self._grace))
        http = await self._http()
        stack.push_async_callback(http.cleanup)
        gauges = asyncio.create_task(self._gauges())
        stack.callback(gauges.cancel)

    async def _close_journals(self) -> None:
        for s in self.shards.values():
            await asyncio.to_thread(s.journal.close)

    async def stop(self, grace: float = 5.0) -> None:
        self._grace = grace
        stack, self._lifecycle = self._lifecycle, None
        if stack is not None:
            await stack.aclose()

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT, then stop."""
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        await self.start()
        print(f"mailnode archive {self.name}: ready on {self.cfg.listen}", flush=True)
        await stopped.wait()
        await self.stop()

    async def _gauges(self) -> None:
        while True:
            usage = shutil.disk_usage(self.cfg.data_dir)
            DISK_BYTES.set(usage.used)
            DISK_FREE.set(usage.free)
            await asyncio.sleep(5)

    def healthy(self) -> tuple[bool, dict]:
        return True, {
            "archive": self.name,
            "status": "ok",
            "shards": {
                str(n): {"end_lsn": s.journal.committed_lsn, "epoch": s.epoch}
                for n, s in self.shards.items()
            },
        }

    async def _http(self) -> web.AppRunner:
        host, port = parse_address(self.cfg.http, "[archive] http")
        return await serve_app(base_app(self.healthy), host, port)
