"""``mailcoordinator --config coord.toml``: run a coordinator (run two or more).

Its file has one [coordinator] section; ``mailcoordinator --print-defaults`` prints
every key with its default and meaning. Declared and loaded as the node's file is
(``mailnode/config.py``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import dataclass

from prometheus_client import start_http_server

from coordinator.coordinator import Coordinator
from coordinator.model import CoordinationError
from mailnode.config import (
    ConfigError,
    ConfigFile,
    address,
    documented_defaults,
    parse,
    positive,
    read_toml,
    required,
    setting,
)


@dataclass(frozen=True)
class CoordinatorSettings:
    name: str = required("unique among coordinators")
    zookeeper: str = required("the ZooKeeper ensemble, host:port,host:port,...")
    root: str = setting("/mailcluster", "the cluster's root znode")
    session_timeout: float = setting(4.0, "ZooKeeper session timeout in seconds", positive)
    loop_interval: float = setting(
        0.5, "at most this many seconds between two looks at the cluster", positive
    )
    http: str = setting("", "host:port of Prometheus /metrics; empty disables it", address)


@dataclass(frozen=True)
class CoordinatorConfig(ConfigFile):
    coordinator: CoordinatorSettings


def load(path: str) -> CoordinatorSettings:
    return parse(CoordinatorConfig, read_toml(path), path).coordinator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="mailcoordinator", description="Run a mailcluster coordinator."
    )
    p.add_argument("--config", help="coordinator TOML file")
    p.add_argument(
        "--print-defaults", action="store_true", help="print every config key with its default"
    )
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.print_defaults:
        print(documented_defaults(CoordinatorConfig))
        return 0
    if not args.config:
        p.error("--config is required")
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"mailcoordinator: config error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kazoo").setLevel(logging.WARNING)
    if cfg.http:
        host, _, port = cfg.http.rpartition(":")
        start_http_server(int(port), addr=host)
    c = Coordinator(
        cfg.name,
        hosts=cfg.zookeeper,
        root=cfg.root,
        session_timeout=cfg.session_timeout,
        loop_interval=cfg.loop_interval,
    )
    signal.signal(signal.SIGTERM, lambda *_: c.stop())
    signal.signal(signal.SIGINT, lambda *_: c.stop())
    print(f"mailcoordinator {cfg.name}: ready", flush=True)
    try:
        c.run()
    except CoordinationError as e:
        print(f"mailcoordinator: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
