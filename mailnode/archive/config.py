"""The archive's TOML file (``mailnode archive --config archive.toml``).

[archive] name, data_dir, listen (gRPC, mTLS), http (metrics), tls_ca / tls_cert / tls_key.
"""

from __future__ import annotations

import os

from mailnode.config import ConfigError, Section, _check, read_toml

SCHEMA = {
    "name": (str, "archive", "name of this archive"),
    "data_dir": (str, "archive-data", "where shard journals are kept (relative to this file)"),
    "listen": (str, "127.0.0.1:7171", "host:port of the Archive gRPC service"),
    "http": (str, "127.0.0.1:8181", "host:port for /metrics and /health"),
    "tls_ca": (
        str,
        "",
        "CA that signed the nodes' client certificates (empty: no TLS; tests only)",
    ),
    "tls_cert": (str, "", "this archive's certificate"),
    "tls_key": (str, "", "its key"),
    "segment_size": (int, 64 * 1024 * 1024, "bytes after which a new archive segment starts"),
    "keep_bases": (
        int,
        2,
        "base backups kept per shard; the journal is kept from the oldest of them on "
        "(with none, all of it)",
    ),
}


def load(path: str) -> Section:
    raw = read_toml(path)
    if set(raw) - {"archive"}:
        raise ConfigError(
            f"{path}: unknown section(s) {sorted(set(raw) - {'archive'})} (known: archive)"
        )
    given = raw.get("archive", {})
    for key in given:
        if key not in SCHEMA:
            raise ConfigError(f"{path}: [archive] unknown key {key!r} (known: {', '.join(SCHEMA)})")
    values = {
        k: _check(path, "archive", k, given[k], typ) if k in given else default
        for k, (typ, default, _) in SCHEMA.items()
    }
    tls = [values["tls_ca"], values["tls_cert"], values["tls_key"]]
    if any(tls) and not all(tls):
        raise ConfigError(f"{path}: [archive] tls_ca, tls_cert and tls_key go together")
    base = os.path.dirname(os.path.abspath(path))
    for key in ("data_dir", "tls_ca", "tls_cert", "tls_key"):
        if values[key]:
            values[key] = os.path.join(base, values[key])
    return Section(values)
