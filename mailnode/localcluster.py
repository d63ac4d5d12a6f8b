"""``mailctl local up|down|status``: the whole cluster on loopback, for trying and testing.

Each local cluster gets its own loopback block 127.A.B.0/24, derived from its
directory, so several can run side by side on standard-looking ports. The map
of what was started is DIR/local.json; ``up`` on an existing DIR reuses it and
resumes the data.
"""

from __future__ import annotations

import datetime
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

from mailnode.config import parse_address

PORTS = {"smtp": 2525, "pop3": 1110, "http": 8080, "grpc": 7070}


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
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def node_config(node: dict, domain: str, shards: int, cert: str, key: str) -> str:
    return (
        f'[node]\nname = "{node["name"]}"\ndata_dir = "data"\nhostname = "{node["name"]}.{domain}"\n'
        f'domains = ["{domain}"]\nshards = {shards}\n\n'
        f'[smtp]\nlisten = "{node["smtp"]}"\n\n[pop3]\nlisten = "{node["pop3"]}"\n\n'
        f'[http]\nlisten = "{node["http"]}"\n\n[grpc]\nlisten = "{node["grpc"]}"\n\n'
        f'[tls]\ncert = "{cert}"\nkey = "{key}"\n'
    )


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


def up(directory: str, *, nodes: int = 1, shards: int = 1, domain: str = "example.test",
       base_address: str | None = None, timeout: float = 60.0) -> dict:
    if nodes != 1:
        raise LocalError("--nodes: only a single node can run until the cluster (ZooKeeper) part is built")
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    state = load_state(directory)
    if state is None:
        block = base_address or loopback_block(directory)
        node_list = []
        for i in range(1, nodes + 1):
            ip = f"{block}.{10 + i}"
            node_list.append({"name": f"node{i}", **{k: f"{ip}:{p}" for k, p in PORTS.items()}})
        state = {"domain": domain, "shards": shards, "nodes": node_list}
    elif state["shards"] != shards or state["domain"] != domain:
        raise LocalError(
            f"{directory} holds a cluster of {state['shards']} shards for {state['domain']}; "
            "use those values or another --dir"
        )
    cert, key = make_certificate(directory, f"mail.{state['domain']}")
    for node in state["nodes"]:
        ndir = os.path.join(directory, node["name"])
        os.makedirs(ndir, exist_ok=True)
        node["dir"] = ndir
        node["config"] = os.path.join(ndir, "node.toml")
        node["log"] = os.path.join(ndir, "node.log")
        node["data_dir"] = os.path.join(ndir, "data")
        with open(node["config"], "w") as f:
            f.write(node_config(node, state["domain"], state["shards"], cert, key))
        if _alive(node.get("pid")) and health(node):
            continue
        busy = [k for k in PORTS if not _port_free(node[k])]
        if busy:
            raise LocalError(f"{node['name']}: {', '.join(node[k] for k in busy)} already in use; "
                             "stop what holds it or pick another --base-address")
        with open(node["log"], "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mailnode.cli", "--config", node["config"]],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=ndir,
            )
        node["pid"] = proc.pid
        save_state(directory, state)
    deadline = time.monotonic() + timeout
    for node in state["nodes"]:
        while not health(node):
            if not _alive(node["pid"]):
                raise LocalError(f"{node['name']} exited during start-up; see {node['log']}:\n"
                                 + _tail(node["log"]))
            if time.monotonic() > deadline:
                raise LocalError(f"{node['name']} not ready after {timeout:.0f}s; see {node['log']}")
            time.sleep(0.1)
    save_state(directory, state)
    return state


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
    for node in state["nodes"]:
        pid = node.get("pid")
        if not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(node["name"])
    return stopped


def status(directory: str) -> dict:
    state = load_state(directory)
    if state is None:
        raise LocalError(f"{directory}: no local cluster here (no local.json)")
    for node in state["nodes"]:
        node["alive"] = _alive(node.get("pid"))
        node["health"] = health(node) if node["alive"] else None
    return state


PUBLIC_KEYS = ("name", "pid", "smtp", "submission", "pop3", "http", "grpc")


def public_map(state: dict) -> dict:
    """The operator-contract JSON: keys for parts not built yet are absent."""
    return {"nodes": [{k: n[k] for k in PUBLIC_KEYS if k in n} |
                      ({"alive": n["alive"]} if "alive" in n else {}) for n in state["nodes"]]}
