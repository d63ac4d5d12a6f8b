"""Configuration files: one TOML file, every key documented with its default.

Each section is a frozen dataclass; each key is one line declaring its type (the
annotation), default, meaning and validator (``setting(...)`` / ``required(...)``).
``parse`` reads a file into such a tree and ``documented_defaults`` prints it; the
node's file is ``Config`` below, the archive's and the coordinator's use the same
machinery (``mailnode/archive/config.py``, ``coordinator/cli.py``).

A bad file stops start-up with a message naming the file, the key and what was
expected (or, for TOML syntax, the line and column tomllib reports). Loading reads
the file and nothing else: it creates no directory or file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Where:
    """The key a value came from: the file, the section and the key."""

    file: str
    section: str
    key: str

    def __str__(self) -> str:
        return f"{self.file}: [{self.section}] {self.key}"

    def refuse(self, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self}: expected {expected}, got {value!r}")


# A validator gets the value (already of the declared type) and where it came from;
# it returns the value to keep (possibly normalised) or raises ConfigError.
Check = Callable[[Any, Where], Any]
T = TypeVar("T")


def _keep(value: Any, where: Where) -> Any:
    return value


def setting(default: T, meaning: str, check: Check = _keep) -> T:
    """A key with a default; its type is the field's annotation."""
    meta = {"meaning": meaning, "check": check}
    if isinstance(default, Mapping):
        frozen = types.MappingProxyType(dict(default))
        return dataclasses.field(default_factory=lambda: frozen, metadata=meta)  # type: ignore[return-value]
    return dataclasses.field(default=default, metadata=meta)


def required(meaning: str, check: Check = _keep) -> Any:
    """A key the file must give (declare these first in their section)."""
    return dataclasses.field(metadata={"meaning": meaning, "check": check, "required": True})


# -- validators ---------------------------------------------------------------------------
def parse_address(value: str, where: object) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f'{where}: expected "host:port", got {value!r}')
    return host.strip("[]") or "127.0.0.1", int(port)


def address(value: str, where: Where) -> str:
    """host:port; empty is allowed and means "off" where the meaning says so."""
    if value:
        parse_address(value, where)
    return value


def positive(value: float, where: Where) -> float:
    if value <= 0:
        raise where.refuse("a positive number", value)
    return value


def non_negative(value: float, where: Where) -> float:
    if value < 0:
        raise where.refuse("zero or a positive number", value)
    return value


def one_of(*choices: str) -> Check:
    def check(value: str, where: Where) -> str:
        if value not in choices:
            raise where.refuse(f"one of {', '.join(choices)}", value)
        return value

    return check


def path(value: str, where: Where) -> str:
    """A file or directory, relative to the config file (not the working directory)."""
    if not value:
        return value
    return os.path.join(os.path.dirname(os.path.abspath(where.file)), value)


def lowercase(value: tuple[str, ...], where: Where) -> tuple[str, ...]:
    return tuple(v.lower() for v in value)


def next_hops(value: Mapping[str, str], where: Where) -> Mapping[str, str]:
    for k, v in value.items():
        parse_address(v, f"{where} {k!r}")
    return types.MappingProxyType({k.lower(): v for k, v in value.items()})


# -- the loader ---------------------------------------------------------------------------
def _typed(value: Any, typ: Any, where: Where) -> Any:
    """``value`` as the declared type (TOML gives lists and dicts; we keep them frozen)."""
    if typ is bool:
        if not isinstance(value, bool):
            raise where.refuse("true or false", value)
        return value
    if typ in (int, float, str):
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise ConfigError(
                f"{where}: expected {typ.__name__}, got {type(value).__name__} {value!r}"
            )
        return value
    origin = typing.get_origin(typ)
    if origin is tuple:  # tuple[str, ...]: a TOML list of non-empty strings
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
            raise where.refuse("a list of non-empty strings", value)
        return tuple(value)
    if origin is Mapping:  # Mapping[str, str]: a TOML table of non-empty strings
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(value).__name__} {value!r}")
        for k, v in value.items():
            if not isinstance(v, str) or not v:
                raise ConfigError(f"{where}: {k!r}: expected a non-empty string, got {v!r}")
        return types.MappingProxyType(dict(value))
    raise TypeError(f"{where}: no loader for type {typ!r}")  # a declaration bug


def _keys(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


@dataclass(frozen=True)
class ConfigFile:
    """A whole file: ``path`` and one field per section (a dataclass of settings)."""

    path: str

    def check(self) -> str | None:
        """A rule across keys that does not hold (the message), or None."""
        return None

    @classmethod
    def sections(cls) -> dict[str, type]:
        return {f.name: typ for f, typ in _keys(cls) if f.name != "path"}


F = TypeVar("F", bound=ConfigFile)


def _section(cls: type[T], name: str, given: dict, path: str) -> T:
    keys = _keys(cls)
    known = [f.name for f, _ in keys]
    for key in given:
        if key not in known:
            raise ConfigError(f"{path}: [{name}] unknown key {key!r} (known: {', '.join(known)})")
    values = {}
    for f, typ in keys:
        where = Where(path, name, f.name)
        if f.name in given:
            value = _typed(given[f.name], typ, where)
        elif f.metadata.get("required"):
            raise ConfigError(f"{path}: [{name}] {f.name} is required ({f.metadata['meaning']})")
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = f.default
        values[f.name] = f.metadata["check"](value, where)
    return cls(**values)


def parse(cls: type[F], raw: dict, path: str) -> F:
    sections = cls.sections()
    for name in raw:
        if name not in sections:
            raise ConfigError(f"{path}: unknown section [{name}] (known: {', '.join(sections)})")
        if not isinstance(raw[name], dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
    built: dict[str, Any] = {
        name: _section(sec, name, raw.get(name, {}), path) for name, sec in sections.items()
    }
    cfg = cls(path=path, **built)
    problem = cfg.check()
    if problem:
        raise ConfigError(f"{path}: {problem}")
    return cfg


def read_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    elif isinstance(value, Mapping):
        value = dict(value)
    return json.dumps(value)


def documented_defaults(cls: type[ConfigFile] | None = None) -> str:
    """The reference file with every key, its default and what it means."""
    lines = []
    for name, sec in (cls or Config).sections().items():
        lines.append(f"[{name}]")
        for f, _ in _keys(sec):
            if f.metadata.get("required"):
                val = "<required>"
            elif f.default_factory is not dataclasses.MISSING:
                val = _shown(f.default_factory())
            else:
                val = _shown(f.default)
            lines.append(f"# {f.metadata['meaning']}")
            lines.append(f"{f.name} = {val}")
        lines.append("")
    return "\n".join(lines)


# -- the node's file ----------------------------------------------------------------------
@dataclass(frozen=True)
class NodeSection:
    name: str = required("node name, unique in the cluster")
    data_dir: str = required("where journals, Maildirs and state live", path)
    hostname: str = setting("localhost", "name used in SMTP greetings and Received: headers")
    domains: tuple[str, ...] = setting(
        ("example.test",), "mail domains hosted by this cluster", lowercase
    )
    shards: int = setting(1, "number of shards, fixed when the data directory is created", positive)


@dataclass(frozen=True)
class SmtpSection:
    listen: str = setting("127.0.0.1:2525", "host:port of the MX listener (never relays)", address)
    max_message_size: int = setting(36700160, "SIZE limit in octets (552 above it)", positive)
    max_recipients: int = setting(1000, "recipients per transaction (452 above it)", positive)
    timeout: float = setting(300.0, "idle seconds before a session is closed", positive)


@dataclass(frozen=True)
class SubmissionSection:
    listen: str = setting(
        "",
        "host:port of the submission listener with STARTTLS (port 587); empty disables it",
        address,
    )
    listen_tls: str = setting(
        "", "host:port of submission with implicit TLS (port 465); empty disables it", address
    )
    sender_must_match: bool = setting(
        True, "MAIL FROM must be the authenticated user's own address"
    )
    rate_per_user: int = setting(
        500, "messages per hour one authenticated user may submit (0: no limit)", non_negative
    )
    rate_per_ip: int = setting(
        2000, "messages per hour submitted from one client IP address (0: no limit)", non_negative
    )


@dataclass(frozen=True)
class DeliverySection:
    enabled: bool = setting(True, "work the delivery queue of the shards this node is primary of")
    smarthost: str = setting(
        "", "host:port all remote mail is relayed to (empty: MX lookup)", address
    )
    transport: Mapping[str, str] = setting(
        {}, 'domain = "host:port": a fixed next hop per domain; "*" for all others', next_hops
    )
    dns_servers: tuple[str, ...] = setting(
        (), "resolver host[:port] for MX lookups (empty: /etc/resolv.conf)"
    )
    dns_timeout: float = setting(10.0, "seconds an MX or address lookup may take", positive)
    mx_port: int = setting(25, "port of MX hosts", positive)
    helo_name: str = setting("", "name in our EHLO (empty: [node] hostname)")
    starttls: str = setting(
        "may",
        "may: STARTTLS when offered, certificate unchecked; encrypt: required and verified; none",
        one_of("may", "encrypt", "none"),
    )
    concurrency: int = setting(50, "delivery attempts at once on this node", positive)
    destination_concurrency: int = setting(
        10, "attempts at once to one domain or next hop", positive
    )
    connect_timeout: float = setting(30.0, "seconds to connect to a remote server", positive)
    timeout: float = setting(
        300.0, "seconds a remote server may take to answer a command", positive
    )
    retry_initial: float = setting(
        300.0, "least seconds before a deferred message is tried again", positive
    )
    retry_max: float = setting(4000.0, "most seconds between two attempts", positive)
    lifetime: float = setting(
        432000.0, "seconds a message may stay queued before it bounces (5 days)", positive
    )
    delay_warning: float = setting(
        0.0, "seconds after which the sender is told of a delay, once (0: never)", non_negative
    )


@dataclass(frozen=True)
class Pop3Section:
    listen: str = setting(
        "127.0.0.1:1110", "host:port of the POP3 listener; empty disables it", address
    )
    auth_failure_delay: float = setting(
        2.0, "seconds before a wrong password is answered", positive
    )


@dataclass(frozen=True)
class ImapSection:
    listen: str = setting(
        "127.0.0.1:1143", "host:port of the IMAP listener (STARTTLS); empty disables it", address
    )
    listen_tls: str = setting(
        "",
        "host:port of the IMAP listener with TLS from the first byte (993); empty disables it",
        address,
    )
    auth_failure_delay: float = setting(
        2.0, "seconds before a wrong password is answered", positive
    )
    idle_timeout: float = setting(
        1800.0,
        "seconds a session may wait for a command or sit in IDLE (RFC 9051: 30 min)",
        positive,
    )
    stale_reads: bool = setting(
        False,
        "while a mailbox's shard has no reachable primary, serve it read-only from this "
        "node's spare copy (which may lag) instead of refusing the login",
    )


@dataclass(frozen=True)
class HttpSection:
    listen: str = setting("127.0.0.1:8080", "host:port for /metrics and /health", address)


@dataclass(frozen=True)
class GrpcSection:
    listen: str = setting(
        "127.0.0.1:7070", "host:port of the admin and replication service", address
    )
    advertise: str = setting(
        "", "host:port other nodes use to reach this node's gRPC (default: listen)", address
    )


@dataclass(frozen=True)
class ClusterSection:
    zookeeper: str = setting(
        "", "ZooKeeper ensemble host:port,...; empty: a standalone node (roles by hand)"
    )
    root: str = setting("/mailcluster", "the cluster's root znode")
    session_timeout: float = setting(
        4.0, "ZooKeeper session timeout: failover time is about this plus a second", positive
    )
    prefer: str = setting(
        "any",
        "any, or spare: coordinators promote in-sync nodes configured as spares first",
        one_of("any", "spare"),
    )


@dataclass(frozen=True)
class FrontendSection:
    hold_timeout: float = setting(
        30.0, "seconds a transaction waits for its shard's new primary during a failover", positive
    )


@dataclass(frozen=True)
class ArchiveSection:
    address: str = setting(
        "", "host:port of the remote site's archive; empty: no shipping", address
    )
    server_name: str = setting("archive", "name in the archive's certificate")
    tls_ca: str = setting(
        "", "CA of the sites' certificates (mTLS); empty: plaintext (tests only)", path
    )
    tls_cert: str = setting("", "this node's client certificate", path)
    tls_key: str = setting("", "its key", path)
    remote_sync: bool = setting(
        False, "a commit waits for the archive too (451 when it does not answer)"
    )
    timeout: float = setting(5.0, "seconds a remote_sync commit waits for the archive", positive)
    remove_archived: bool = setting(
        True, "remove journal segments the archive and every spare hold"
    )
    absent_spare_wait: float = setting(
        3600.0,
        "seconds removal waits for a spare that is away; after that "
        "it goes on without it (the spare bootstraps from a snapshot)",
        positive,
    )
    base_backup_interval: float = setting(
        86400.0, "seconds between base backups a primary uploads (0: never)", non_negative
    )
    spare_trim_interval: float = setting(
        30.0, "seconds between a spare's removals of segments the archive holds", positive
    )


@dataclass(frozen=True)
class HooksSection:
    on_role_change: str = setting(
        "", "executable run (in the background) after each role change of a shard", path
    )
    timeout: float = setting(10.0, "seconds a hook may run before it is killed", positive)


@dataclass(frozen=True)
class ReplicationPolicy:
    """How a primary answers commits with respect to its spares (``Shard``'s replication)."""

    policy: str = setting(
        "sync",
        "sync (250 after a spare's fsync too), async, or local",
        one_of("sync", "async", "local"),
    )
    strict: bool = setting(
        False, "under sync with no spare acknowledging: true = 451, false = degrade to local"
    )
    sync_timeout: float = setting(
        2.0, "seconds a commit waits for a spare's acknowledgement", positive
    )
    max_lag_seconds: float = setting(
        5.0, "a spare whose oldest unacknowledged commit is older is not in sync", positive
    )
    max_lag_bytes: int = setting(
        268435456, "a spare further behind than this is not in sync", positive
    )


@dataclass(frozen=True)
class ReplicationSection(ReplicationPolicy):
    follow: str = setting(
        "",
        "gRPC host:port of the primary a NEW node's shards follow (empty: they start as primary)",
        address,
    )
    secret_file: str = setting(
        "",
        "file with the cluster secret every node's replication calls must carry (empty: none; required in a cluster)",
        path,
    )


@dataclass(frozen=True)
class TlsSection:
    cert: str = setting("", "PEM certificate chain for STARTTLS/STLS; empty disables TLS", path)
    key: str = setting("", "PEM private key for cert", path)


@dataclass(frozen=True)
class JournalSection:
    segment_size: int = setting(
        64 * 1024 * 1024, "bytes after which a new segment starts", positive
    )


@dataclass(frozen=True)
class StoreSection:
    checkpoint_interval: float = setting(
        5.0, "seconds between store checkpoints (bounds replay at start)", positive
    )


@dataclass(frozen=True)
class Config(ConfigFile):
    """A node's file (``mailnode --config node.toml``)."""

    node: NodeSection
    smtp: SmtpSection
    submission: SubmissionSection
    delivery: DeliverySection
    pop3: Pop3Section
    imap: ImapSection
    http: HttpSection
    grpc: GrpcSection
    cluster: ClusterSection
    frontend: FrontendSection
    archive: ArchiveSection
    hooks: HooksSection
    replication: ReplicationSection
    tls: TlsSection
    journal: JournalSection
    store: StoreSection

    def check(self) -> str | None:
        if bool(self.tls.cert) != bool(self.tls.key):
            return "[tls] cert and key go together"
        if self.cluster.zookeeper and not self.replication.secret_file:
            # Follow, Fence and Submit would be open to anyone who reaches the gRPC port: a
            # stranger could acknowledge commits or fence a primary (review finding F13).
            return (
                "[replication] secret_file is required in a cluster ([cluster] zookeeper "
                "is set): the same file of at least 16 characters on every node, mode 0600"
            )
        if (self.submission.listen or self.submission.listen_tls) and not self.tls.cert:
            return "[submission] needs [tls] cert and key (AUTH is offered only under TLS)"
        if self.imap.listen_tls and not self.tls.cert:
            return "[imap] listen_tls needs [tls] cert and key"
        arc = self.archive
        if any((arc.tls_ca, arc.tls_cert, arc.tls_key)) and not all(
            (arc.tls_ca, arc.tls_cert, arc.tls_key)
        ):
            return "[archive] tls_ca, tls_cert and tls_key go together"
        return None


def load(path: str) -> Config:
    return from_dict(read_toml(path), path)


def from_dict(raw: dict, path: str = "<config>") -> Config:
    return parse(Config, raw, path)
