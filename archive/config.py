"""The archive's TOML file (``mailnode archive --config archive.toml``): one [archive]
section, declared and loaded as the node's file is (``mailnode/config.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from mailnode.config import ConfigFile, address, parse, path, positive, read_toml, setting


@dataclass(frozen=True)
class ArchiveSettings:
    name: str = setting("archive", "name of this archive")
    data_dir: str = setting(
        "archive-data", "where shard journals are kept (relative to this file)", path
    )
    listen: str = setting("127.0.0.1:7171", "host:port of the Archive gRPC service", address)
    http: str = setting("127.0.0.1:8181", "host:port for /metrics and /health", address)
    tls_ca: str = setting(
        "", "CA that signed the nodes' client certificates (empty: no TLS; tests only)", path
    )
    tls_cert: str = setting("", "this archive's certificate", path)
    tls_key: str = setting("", "its key", path)
    segment_size: int = setting(
        64 * 1024 * 1024, "bytes after which a new archive segment starts", positive
    )
    keep_bases: int = setting(
        2,
        "base backups kept per shard; the journal is kept from the oldest of them on "
        "(with none, all of it)",
        positive,
    )


@dataclass(frozen=True)
class ArchiveConfig(ConfigFile):
    archive: ArchiveSettings

    def check(self) -> str | None:
        tls = (self.archive.tls_ca, self.archive.tls_cert, self.archive.tls_key)
        if any(tls) and not all(tls):
            return "[archive] tls_ca, tls_cert and tls_key go together"
        return None


def load(file: str) -> ArchiveSettings:
    return parse(ArchiveConfig, read_toml(file), file).archive
