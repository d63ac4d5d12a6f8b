"""mTLS between the sites: gRPC credentials from PEM files, and a small CA for the
local cluster and tests (cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
import os

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def server_credentials(ca: str, cert: str, key: str) -> grpc.ServerCredentials:
    """The archive's side: its certificate, and client certificates required, signed by ca."""
    return grpc.ssl_server_credentials(
        [(_read(key), _read(cert))], root_certificates=_read(ca), require_client_auth=True
    )


def channel_credentials(ca: str, cert: str, key: str) -> grpc.ChannelCredentials:
    """A node's (or mailctl's) side: the archive's certificate checked against ca, ours shown."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca), private_key=_read(key), certificate_chain=_read(cert)
    )


def write_pem(cert_path: str, key_path: str, cert, key) -> None:
    """A certificate and its key (mode 0600) as PEM files."""
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def self_signed(
    cert_path: str, key_path: str, hostname: str, *, days: int = 3650, loopback: bool = False
) -> tuple[str, str]:
    """A self-signed certificate for ``hostname`` (and 127.0.0.1 with ``loopback``) for
    STARTTLS/STLS where nobody verifies a chain: the local cluster, test servers."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if loopback:
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_pem(cert_path, key_path, cert, key)
    return cert_path, key_path


def make_ca(directory: str, names: list[str]) -> dict[str, tuple[str, str]]:
    """A CA and one certificate per name (valid for that name, localhost and 127.0.0.1),
    written as PEM files in ``directory``. Returns {"ca": (cert, key), name: (cert, key)}."""
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def write(name: str, cert, key) -> tuple[str, str]:
        paths = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
        write_pem(*paths, cert, key)
        return paths

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailcluster site CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    out = {"ca": write("ca", ca_cert, ca_key)}
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(name),
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        out[name] = write(name, cert, key)
    return out
