"""Node configuration: one TOML file, every key documented with its default.

A bad file stops start-up with a message naming the file, the key and what was
expected (or, for TOML syntax, the line and column tomllib reports).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any


class ConfigError(Exception):
    pass


# section -> key -> (type, default, description). A default of REQUIRED must be given.
MAY_BE_ZERO = {
    ("delivery", "delay_warning"),
    ("archive", "base_backup_interval"),
    ("submission", "rate_per_user"),
    ("submission", "rate_per_ip"),
}
REQUIRED = object()
SCHEMA: dict[str, dict[str, tuple[type | tuple, Any, str]]] = {
    "node": {
        "name": (str, REQUIRED, "node name, unique in the cluster"),
        "data_dir": (str, REQUIRED, "where journals, Maildirs and state live"),
        "hostname": (str, "localhost", "name used in SMTP greetings and Received: headers"),
        "domains": (list, ["example.test"], "mail domains hosted by this cluster"),
        "shards": (int, 1, "number of shards, fixed when the data directory is created"),
    },
    "smtp": {
        "listen": (str, "127.0.0.1:2525", "host:port of the MX listener (never relays)"),
        "max_message_size": (int, 36700160, "SIZE limit in octets (552 above it)"),
        "max_recipients": (int, 1000, "recipients per transaction (452 above it)"),
        "timeout": (float, 300.0, "idle seconds before a session is closed"),
    },
    "submission": {
        "listen": (
            str,
            "",
            "host:port of the submission listener with STARTTLS (port 587); empty disables it",
        ),
        "listen_tls": (
            str,
            "",
            "host:port of submission with implicit TLS (port 465); empty disables it",
        ),
        "sender_must_match": (bool, True, "MAIL FROM must be the authenticated user's own address"),
        "rate_per_user": (
            int,
            500,
            "messages per hour one authenticated user may submit (0: no limit)",
        ),
        "rate_per_ip": (
            int,
            2000,
            "messages per hour submitted from one client IP address (0: no limit)",
        ),
    },
    "delivery": {
        "enabled": (bool, True, "work the delivery queue of the shards this node is primary of"),
        "smarthost": (str, "", "host:port all remote mail is relayed to (empty: MX lookup)"),
        "transport": (
            dict,
            {},
            'domain = "host:port": a fixed next hop per domain; "*" for all others',
        ),
        "dns_servers": (list, [], "resolver host[:port] for MX lookups (empty: /etc/resolv.conf)"),
        "dns_timeout": (float, 10.0, "seconds an MX or address lookup may take"),
        "mx_port": (int, 25, "port of MX hosts"),
        "helo_name": (str, "", "name in our EHLO (empty: [node] hostname)"),
        "starttls": (
            str,
            "may",
            "may: STARTTLS when offered, certificate unchecked; encrypt: required and "
            "verified; none",
        ),
        "concurrency": (int, 50, "delivery attempts at once on this node"),
        "destination_concurrency": (int, 10, "attempts at once to one domain or next hop"),
        "connect_timeout": (float, 30.0, "seconds to connect to a remote server"),
        "timeout": (float, 300.0, "seconds a remote server may take to answer a command"),
        "retry_initial": (float, 300.0, "least seconds before a deferred message is tried again"),
        "retry_max": (float, 4000.0, "most seconds between two attempts"),
        "lifetime": (
            float,
            432000.0,
            "seconds a message may stay queued before it bounces (5 days)",
        ),
        "delay_warning": (
            float,
            0.0,
            "seconds after which the sender is told of a delay, once (0: never)",
        ),
    },
    "pop3": {
        "listen": (str, "127.0.0.1:1110", "host:port of the POP3 listener; empty disables it"),
        "auth_failure_delay": (float, 2.0, "seconds before a wrong password is answered"),
    },
    "http": {
        "listen": (str, "127.0.0.1:8080", "host:port for /metrics and /health"),
    },
    "grpc": {
        "listen": (str, "127.0.0.1:7070", "host:port of the admin and replication service"),
        "advertise": (
            str,
            "",
            "host:port other nodes use to reach this node's gRPC (default: listen)",
        ),
    },
    "cluster": {
        "zookeeper": (
            str,
            "",
            "ZooKeeper ensemble host:port,...; empty: a standalone node (roles by hand)",
        ),
        "root": (str, "/mailcluster", "the cluster's root znode"),
        "session_timeout": (
            float,
            4.0,
            "ZooKeeper session timeout: failover time is about this plus a second",
        ),
        "prefer": (
            str,
            "any",
            "any, or spare: coordinators promote in-sync nodes configured as spares first",
        ),
    },
    "frontend": {
        "hold_timeout": (
            float,
            30.0,
            "seconds a transaction waits for its shard's new primary during a failover",
        ),
    },
    "archive": {
        "address": (str, "", "host:port of the remote site's archive; empty: no shipping"),
        "server_name": (str, "archive", "name in the archive's certificate"),
        "tls_ca": (str, "", "CA of the sites' certificates (mTLS); empty: plaintext (tests only)"),
        "tls_cert": (str, "", "this node's client certificate"),
        "tls_key": (str, "", "its key"),
        "remote_sync": (
            bool,
            False,
            "a commit waits for the archive too (451 when it does not answer)",
        ),
        "timeout": (float, 5.0, "seconds a remote_sync commit waits for the archive"),
        "remove_archived": (bool, True, "remove journal segments the archive and every spare hold"),
        "absent_spare_wait": (
            float,
            3600.0,
            "seconds removal waits for a spare that is away; after that "
            "it goes on without it (the spare bootstraps from a snapshot)",
        ),
        "base_backup_interval": (
            float,
            86400.0,
            "seconds between base backups a primary uploads (0: never)",
        ),
        "spare_trim_interval": (
            float,
            30.0,
            "seconds between a spare's removals of segments the archive holds",
        ),
    },
    "hooks": {
        "on_role_change": (
            str,
            "",
            "executable run (in the background) after each role change of a shard",
        ),
        "timeout": (float, 10.0, "seconds a hook may run before it is killed"),
    },
    "replication": {
        "policy": (str, "sync", "sync (250 after a spare's fsync too), async, or local"),
        "strict": (
            bool,
            False,
            "under sync with no spare acknowledging: true = 451, false = degrade to local",
        ),
        "sync_timeout": (float, 2.0, "seconds a commit waits for a spare's acknowledgement"),
        "max_lag_seconds": (
            float,
            5.0,
            "a spare whose oldest unacknowledged commit is older is not in sync",
        ),
        "max_lag_bytes": (int, 268435456, "a spare further behind than this is not in sync"),
        "follow": (
            str,
            "",
            "gRPC host:port of the primary a NEW node's shards follow (empty: they start as primary)",
        ),
        "secret_file": (
            str,
            "",
            "file with the cluster secret every node's replication calls must carry (empty: none; required in a cluster)",
        ),
    },
    "tls": {
        "cert": (str, "", "PEM certificate chain for STARTTLS/STLS; empty disables TLS"),
        "key": (str, "", "PEM private key for cert"),
    },
    "journal": {
        "segment_size": (int, 64 * 1024 * 1024, "bytes after which a new segment starts"),
    },
    "store": {
        "checkpoint_interval": (
            float,
            5.0,
            "seconds between store checkpoints (bounds replay at start)",
        ),
    },
}


@dataclass
class Section:
    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class Config:
    path: str
    sections: dict[str, Section]

    def __getattr__(self, name: str) -> Section:
        try:
            return self.__dict__["sections"][name]
        except KeyError:
            raise AttributeError(name) from None


def parse_address(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f'{where}: expected "host:port", got {value!r}')
    return host.strip("[]") or "127.0.0.1", int(port)


def _check(path: str, section: str, key: str, value: Any, typ) -> Any:
    where = f"{path}: [{section}] {key}"
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if typ is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise ConfigError(f"{where}: expected {typ.__name__}, got {type(value).__name__} {value!r}")
    if typ in (int, float) and (value < 0 if (section, key) in MAY_BE_ZERO else value <= 0):
        raise ConfigError(f"{where}: expected a positive number, got {value!r}")
    if typ is list and not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of non-empty strings, got {value!r}")
    if typ is dict:
        for k, v in value.items():
            if not isinstance(v, str) or not v:
                raise ConfigError(f'{where}: {k!r}: expected "host:port", got {v!r}')
            parse_address(v, f"{where} {k!r}")
        value = {k.lower(): v for k, v in value.items()}
    if (section, key) == ("delivery", "smarthost") and value:
        parse_address(value, where)
    if (section, key) == ("delivery", "starttls") and value not in ("may", "encrypt", "none"):
        raise ConfigError(f"{where}: expected one of may, encrypt, none, got {value!r}")
    if key in ("listen", "listen_tls", "advertise", "follow", "address", "http") and value:
        parse_address(value, where)
    if (section, key) == ("replication", "policy") and value not in ("sync", "async", "local"):
        raise ConfigError(f"{where}: expected one of sync, async, local, got {value!r}")
    if (section, key) == ("cluster", "prefer") and value not in ("any", "spare"):
        raise ConfigError(f"{where}: expected any or spare, got {value!r}")
    return value


def read_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def load(path: str) -> Config:
    return from_dict(read_toml(path), path)


def from_dict(raw: dict, path: str = "<config>") -> Config:
    sections = {}
    for name in raw:
        if name not in SCHEMA:
            raise ConfigError(f"{path}: unknown section [{name}] (known: {', '.join(SCHEMA)})")
        if not isinstance(raw[name], dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
    for name, keys in SCHEMA.items():
        given = raw.get(name, {})
        for key in given:
            if key not in keys:
                raise ConfigError(
                    f"{path}: [{name}] unknown key {key!r} (known: {', '.join(keys)})"
                )
        values = {}
        for key, (typ, default, _) in keys.items():
            if key in given:
                values[key] = _check(path, name, key, given[key], typ)
            elif default is REQUIRED:
                raise ConfigError(f"{path}: [{name}] {key} is required ({keys[key][2]})")
            else:
                values[key] = default
        sections[name] = Section(values)
    if bool(sections["tls"].cert) != bool(sections["tls"].key):
        raise ConfigError(f"{path}: [tls] cert and key go together")
    if sections["cluster"].zookeeper and not sections["replication"].secret_file:
        # Follow, Fence and Submit would be open to anyone who reaches the gRPC port: a
        # stranger could acknowledge commits or fence a primary (review finding F13).
        raise ConfigError(
            f"{path}: [replication] secret_file is required in a cluster ([cluster] zookeeper "
            "is set): the same file of at least 16 characters on every node, mode 0600"
        )
    sub = sections["submission"]
    if (sub.listen or sub.listen_tls) and not sections["tls"].cert:
        raise ConfigError(
            f"{path}: [submission] needs [tls] cert and key (AUTH is offered only under TLS)"
        )
    # Relative paths are relative to the config file, not to the working directory.
    base = os.path.dirname(os.path.abspath(path))
    sections["node"].values["data_dir"] = os.path.join(base, sections["node"].data_dir)
    arc = sections["archive"]
    if any((arc.tls_ca, arc.tls_cert, arc.tls_key)) and not all(
        (arc.tls_ca, arc.tls_cert, arc.tls_key)
    ):
        raise ConfigError(f"{path}: [archive] tls_ca, tls_cert and tls_key go together")
    for section, key in (
        ("tls", "cert"),
        ("tls", "key"),
        ("replication", "secret_file"),
        ("hooks", "on_role_change"),
        ("archive", "tls_ca"),
        ("archive", "tls_cert"),
        ("archive", "tls_key"),
    ):
        if sections[section].values[key]:
            sections[section].values[key] = os.path.join(base, sections[section].values[key])
    sections["node"].values["domains"] = [d.lower() for d in sections["node"].domains]
    return Config(path, sections)


def documented_defaults() -> str:
    """The reference config with every key, its default and what it means."""
    lines = []
    for name, keys in SCHEMA.items():
        lines.append(f"[{name}]")
        for key, (_, default, doc) in keys.items():
            val = "<required>" if default is REQUIRED else json.dumps(default)
            lines.append(f"# {doc}")
            lines.append(f"{key} = {val}")
        lines.append("")
    return "\n".join(lines)
