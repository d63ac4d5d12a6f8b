"""``mailctl local up|down|status``: the whole cluster on loopback, for trying and testing.

Each local cluster gets its own loopback block 127.A.B.0/24, derived from its
directory, so several can run side by side on standard-looking ports. The map
of what was started is DIR/local.json; ``up`` on an existing DIR reuses it and
resumes the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import tomli_w

from coordinator.model import connect
from devtools.zkserver import Ensemble, ZooKeeperError
from mailnode.config import parse_address
from mailnode.tls import make_ca, self_signed
from mailnode.wire import ensure_secret

PORTS = {
    "smtp": 2525,
    "submission": 5870,
    "submission_tls": 4650,
    "pop3": 1110,
    "imap": 1143,
    "imap_tls": 1993,
    "http": 8080,
    "grpc": 7070,
}


class LocalError(Exception):
    pass


def state_path(directory: str) -> str:
    return os.path.join(directory, "local.json")


def load_state(directory: str) -> dict | None:
    try:
        with open(state_path(directory)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save_state(directory: str, state: dict) -> None:
    tmp = state_path(directory) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=2)
    os.replace(tmp, state_path(directory))


def loopback_block(directory: str) -> str:
    h = hashlib.sha256(os.path.abspath(directory).encode()).digest()
    return f"127.{1 + h[0] % 254}.{h[1] % 255}"


def make_certificate(directory: str, hostname: str) -> tuple[str, str]:
    """A self-signed certificate for STARTTLS/STLS on the local cluster."""
    cert_path, key_path = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    return self_signed(cert_path, key_path, hostname)


def node_config(node: dict, domain: str, shards: int, cert: str, key: str) -> dict:
    config = {
        "node": {
            "name": node["name"],
            "data_dir": "data",
            "hostname": f"{node['name']}.{domain}",
            "domains": [domain],
            "shards": shards,
        },
        **{part: {"listen": node[part]} for part in ("smtp", "pop3", "http", "grpc")},
        "tls": {"cert": cert, "key": key},
    }
    if "submission" in node:
        config["submission"] = {"listen": node["submission"], "listen_tls": node["submission_tls"]}
    if "imap" in node:  # a cluster made before IMAP has no ports for it: none then
        config["imap"] = {"listen": node["imap"], "listen_tls": node["imap_tls"]}
    return config


def write_toml(path: str, config: dict) -> None:
    """A child's configuration file; tomli_w quotes every value as TOML wants it."""
    with open(path, "w") as f:
        f.write(tomli_w.dumps(config))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive; /proc says so.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def health(node: dict, timeout: float = 1.0) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://{node['http']}/health", timeout=timeout) as r:
            return json.load(r)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _port_free(address: str) -> bool:
    host, port = parse_address(address, "address")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _spawn(args: list[str], log_path: str, cwd: str) -> int:
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )
    proc.returncode = 0  # detached on purpose: `local down` stops it by pid
    return proc.pid


def _new_state(
    directory: str, nodes: int, shards: int, domain: str, base_address: str | None
) -> dict:
    block = base_address or loopback_block(directory)
    state: dict = {
        "domain": domain,
        "shards": shards,
        "block": block,
        "nodes": [
            {"name": f"node{i}", **{k: f"{block}.{10 + i}:{p}" for k, p in PORTS.items()}}
            for i in range(1, nodes + 1)
        ],
    }
    # The remote site, on loopback too: the archive every shard primary ships to.
    state["archive"] = {"name": "archive", "grpc": f"{block}.30:7171", "http": f"{block}.30:8181"}
    if nodes > 1:  # a cluster: ZooKeeper ensemble and coordinators
        state["root"] = "/mailcluster"
        state["zk_servers"] = [{"myid": i, "host": f"{block}.{i}"} for i in (1, 2, 3)]
        state["zookeeper"] = ",".join(f"{z['host']}:2181" for z in state["zk_servers"])
        state["coordinators"] = [
            {"name": f"coord{i}", "http": f"{block}.{20 + i}:9090"} for i in (1, 2)
        ]
    return state


def _start_zookeeper(directory: str, state: dict, timeout: float) -> None:
    ens = Ensemble(os.path.join(directory, "zookeeper"), [z["host"] for z in state["zk_servers"]])
    try:
        if all(s.ok() for s in ens.servers):
            return
        for z, server in zip(state["zk_servers"], ens.servers, strict=True):
            if not (_alive(z.get("pid")) and server.ok()):
                proc = server.start(ens.servers, ens.tick_ms)
                proc.returncode = 0  # detached
                z["pid"] = proc.pid
        save_state(directory, state)
        deadline = time.monotonic() + timeout
        while not all(s.ok() for s in ens.servers):
            if time.monotonic() > deadline:
                raise LocalError(
                    f"ZooKeeper not serving after {timeout:.0f}s; see {directory}/zookeeper/zk*/"
                )
            time.sleep(0.1)
    except ZooKeeperError as e:
        raise LocalError(str(e)) from None


def _init_cluster(state: dict) -> None:
    with connect(state["zookeeper"], state["root"], timeout=30) as store:
        store.init(state["shards"], [state["domain"]], 1, 30.0)


def _settled(state: dict) -> bool:
    with connect(state["zookeeper"], state["root"], timeout=30) as store:
        cluster = store.snapshot()
    return all(
        info.primary in cluster.members and any(s in cluster.members for s in info.in_sync)
        for info in cluster.shards.values()
    )


def up(
    directory: str,
    *,
    nodes: int = 3,
    shards: int = 2,
    domain: str = "example.test",
    base_address: str | None = None,
    timeout: float = 90.0,
) -> dict:
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    state = load_state(directory)
    if state is None:
        state = _new_state(directory, nodes, shards, domain, base_address)
    elif (state["shards"], state["domain"], len(state["nodes"])) != (shards, domain, nodes):
        raise LocalError(
            f"{directory} holds {len(state['nodes'])} node(s) with {state['shards']} shards for "
            f"{state['domain']}; use those values or another --dir"
        )
    cluster = "zookeeper" in state
    if cluster:
        _start_zookeeper(directory, state, timeout)
        _init_cluster(state)
        ensure_secret(os.path.join(directory, "cluster.secret"))
    cert, key = make_certificate(directory, f"mail.{state['domain']}")
    archive = _start_archive(directory, state) if "archive" in state else {}
    for node in state["nodes"]:
        ndir = os.path.join(directory, node["name"])
        os.makedirs(ndir, exist_ok=True)
        node.update(
            dir=ndir,
            config=os.path.join(ndir, "node.toml"),
            log=os.path.join(ndir, "node.log"),
            data_dir=os.path.join(ndir, "data"),
        )
        config = node_config(node, state["domain"], state["shards"], cert, key)
        if cluster:
            config["cluster"] = {
                "zookeeper": state["zookeeper"],
                "root": state["root"],
                "session_timeout": 4.0,
            }
            config["replication"] = {"secret_file": "../cluster.secret"}
        write_toml(node["config"], config | archive)
        if _alive(node.get("pid")) and health(node):
            continue
        busy = [k for k in PORTS if k in node and not _port_free(node[k])]
        if busy:
            raise LocalError(
                f"{node['name']}: {', '.join(node[k] for k in busy)} already in use; "
                "stop what holds it or pick another --base-address"
            )
        node["pid"] = _spawn(
            [sys.executable, "-m", "mailnode.cli", "--config", node["config"]], node["log"], ndir
        )
        save_state(directory, state)
    for c in state.get("coordinators", []):
        if _alive(c.get("pid")):
            continue
        cfg = os.path.join(directory, f"{c['name']}.toml")
        coordinator = {
            "name": c["name"],
            "zookeeper": state["zookeeper"],
            "root": state["root"],
            "session_timeout": 4.0,
            "http": c["http"],
        }
        write_toml(cfg, {"coordinator": coordinator})
        c["log"] = os.path.join(directory, f"{c['name']}.log")
        c["pid"] = _spawn(
            [sys.executable, "-m", "coordinator.cli", "--config", cfg], c["log"], directory
        )
        save_state(directory, state)
    deadline = time.monotonic() + timeout
    for node in state["nodes"]:
        while not health(node):
            if not _alive(node["pid"]):
                raise LocalError(
                    f"{node['name']} exited during start-up; see {node['log']}:\n"
                    + _tail(node["log"])
                )
            if time.monotonic() > deadline:
                raise LocalError(
                    f"{node['name']} not ready after {timeout:.0f}s; see {node['log']}"
                )
            time.sleep(0.1)
    while cluster and not _settled(state):
        if time.monotonic() > deadline:
            raise LocalError(
                f"shards not served with an in-sync spare after {timeout:.0f}s; "
                f"see the logs in {directory}"
            )
        time.sleep(0.2)
    save_state(directory, state)
    return state


def _start_archive(directory: str, state: dict) -> dict:
    """Start the archive (its own CA for mTLS, made once); the nodes' [archive] section."""
    pki = os.path.join(directory, "pki")
    if not os.path.exists(os.path.join(pki, "node.key")):
        make_ca(pki, ["archive", "node"])
    a = state["archive"]
    adir = os.path.join(directory, "archive")
    os.makedirs(adir, exist_ok=True)
    cfg = os.path.join(adir, "archive.toml")
    archive = {
        "name": "archive",
        "data_dir": "data",
        "listen": a["grpc"],
        "http": a["http"],
        "tls_ca": "../pki/ca.crt",
        "tls_cert": "../pki/archive.crt",
        "tls_key": "../pki/archive.key",
    }
    write_toml(cfg, {"archive": archive})
    a["log"] = os.path.join(adir, "archive.log")
    if not _alive(a.get("pid")):
        a["pid"] = _spawn(
            [sys.executable, "-m", "mailnode.cli", "archive", "--config", cfg], a["log"], adir
        )
        save_state(directory, state)
    return {
        "archive": {
            "address": a["grpc"],
            "server_name": "archive",
            "tls_ca": f"{pki}/ca.crt",
            "tls_cert": f"{pki}/node.crt",
            "tls_key": f"{pki}/node.key",
        }
    }


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def down(directory: str, timeout: float = 20.0) -> list[str]:
    state = load_state(directory)
    if state is None:
        raise LocalError(f"{directory}: no local cluster here (no local.json)")
    stopped = []
    archive = [state["archive"]] if "archive" in state else []
    for node in (
        state.get("coordinators", []) + state["nodes"] + archive + state.get("zk_servers", [])
    ):
        pid = node.get("pid")
        if not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(node.get("name") or f"zookeeper{node['myid']}")
    return stopped


def status(directory: str) -> dict:
    state = load_state(directory)
    if state is None:
        raise LocalError(f"{directory}: no local cluster here (no local.json)")
    for node in state["nodes"]:
        node["alive"] = _alive(node.get("pid"))
        node["health"] = health(node) if node["alive"] else None
    for part in (
        state.get("coordinators", [])
        + state.get("zk_servers", [])
        + ([state["archive"]] if "archive" in state else [])
    ):
        part["alive"] = _alive(part.get("pid"))
    return state


PUBLIC_KEYS = (
    "name",
    "pid",
    "smtp",
    "submission",
    "submission_tls",
    "pop3",
    "imap",
    "imap_tls",
    "http",
    "grpc",
)


def public_map(state: dict) -> dict:
    """The operator-contract JSON: keys for parts not built yet are absent."""

    def alive(part):
        return {"alive": part["alive"]} if "alive" in part else {}

    out = {"nodes": [{k: n[k] for k in PUBLIC_KEYS if k in n} | alive(n) for n in state["nodes"]]}
    if "zookeeper" in state:
        out["zookeeper"] = state["zookeeper"]
        out["coordinators"] = [
            {k: c[k] for k in ("name", "pid", "http") if k in c} | alive(c)
            for c in state["coordinators"]
        ]
    if "archive" in state:
        out["archive"] = {
            k: state["archive"][k] for k in ("name", "pid", "grpc", "http") if k in state["archive"]
        } | alive(state["archive"])
    return out
