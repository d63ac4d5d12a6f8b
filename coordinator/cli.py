"""``mailcoordinator --config coord.toml``: run a coordinator (run two or more).

[coordinator]
name = "coord1"                  # unique among coordinators
zookeeper = "127.0.0.1:2181"     # the ensemble, host:port,host:port,...
root = "/mailcluster"            # the cluster's root znode
session_timeout = 4.0            # seconds
loop_interval = 0.5              # at most this long between two looks at the cluster
http = "127.0.0.1:9090"          # Prometheus /metrics; empty disables it
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tomllib

DEFAULTS = {
    "name": None,
    "zookeeper": None,
    "root": "/mailcluster",
    "session_timeout": 4.0,
    "loop_interval": 0.5,
    "http": "",
}


def load(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise SystemExit(f"mailcoordinator: {path}: cannot read: {e.strerror}")
    except tomllib.TOMLDecodeError as e:
        raise SystemExit(f"mailcoordinator: {path}: not valid TOML: {e}")
    section = raw.get("coordinator")
    if not isinstance(section, dict):
        raise SystemExit(f"mailcoordinator: {path}: needs a [coordinator] table")
    cfg = {}
    for key, default in DEFAULTS.items():
        value = section.get(key, default)
        if value is None:
            raise SystemExit(f"mailcoordinator: {path}: [coordinator] {key} is required")
        if (
            default is not None
            and type(value) is not type(default)
            and not (isinstance(default, float) and isinstance(value, int))
        ):
            raise SystemExit(
                f"mailcoordinator: {path}: [coordinator] {key}: expected "
                f"{type(default).__name__}, got {value!r}"
            )
        cfg[key] = value
    unknown = set(section) - set(DEFAULTS)
    if unknown:
        raise SystemExit(
            f"mailcoordinator: {path}: [coordinator] unknown key(s) {', '.join(sorted(unknown))}"
        )
    return cfg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="mailcoordinator", description="Run a mailcluster coordinator."
    )
    p.add_argument("--config", required=True)
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    cfg = load(args.config)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kazoo").setLevel(logging.WARNING)
    from coordinator.coordinator import Coordinator
    from coordinator.model import CoordinationError

    if cfg["http"]:
        from prometheus_client import start_http_server

        host, _, port = cfg["http"].rpartition(":")
        start_http_server(int(port), addr=host)
    c = Coordinator(
        cfg["name"],
        hosts=cfg["zookeeper"],
        root=cfg["root"],
        session_timeout=float(cfg["session_timeout"]),
        loop_interval=float(cfg["loop_interval"]),
    )
    signal.signal(signal.SIGTERM, lambda *_: c.stop())
    signal.signal(signal.SIGINT, lambda *_: c.stop())
    print(f"mailcoordinator {cfg['name']}: ready", flush=True)
    try:
        c.run()
    except CoordinationError as e:
        print(f"mailcoordinator: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
