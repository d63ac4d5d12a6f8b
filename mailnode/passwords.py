"""Stored password hashes: ours (Argon2id) and the ones an ISP already has.

A user's hash is kept as given. Hashes this node makes are bare Argon2id
strings (``$argon2id$...``). Imported hashes keep Dovecot's scheme prefix
(``{SHA512-CRYPT}$6$...``), so ``verify`` knows how to check them and a
subscriber logs in with the password they had before the move; nobody has to
be asked for a new one. Schemes whose stored form *is* the password, or is as
good as it (PLAIN, CRAM-MD5, DIGEST-MD5), are refused: they would put secrets
in the journal and the archive in the clear.

Checking is done by libraries made for it (argon2-cffi, libpass, bcrypt);
the salted SHA schemes are hashlib over Dovecot's documented layout
(base64 of digest then salt).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from passlib.hash import des_crypt, md5_crypt, sha256_crypt, sha512_crypt

_argon2 = PasswordHasher()  # argon2id, 64 MiB, t=3: RFC 9106's second recommendation

# Dovecot schemes a hash may be imported in; the value says how it is checked.
_CRYPT_PREFIXES = {"$6$": sha512_crypt, "$5$": sha256_crypt, "$1$": md5_crypt}
_BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
_SALTED = {"SSHA512": hashlib.sha512, "SSHA256": hashlib.sha256, "SSHA": hashlib.sha1}
_UNSALTED = {
    "SHA512": hashlib.sha512,
    "SHA256": hashlib.sha256,
    "SHA1": hashlib.sha1,
    "SHA": hashlib.sha1,
}
_CRYPT_SCHEMES = {"SHA512-CRYPT": "$6$", "SHA256-CRYPT": "$5$", "MD5-CRYPT": "$1$"}
_CLEAR = {"PLAIN", "CLEAR", "CLEARTEXT", "PLAIN-TRUNC", "CRAM-MD5", "HMAC-MD5", "DIGEST-MD5"}


def _split(stored: str) -> tuple[str, str]:
    """(scheme, rest) of a Dovecot ``{SCHEME}rest``; a bare hash is CRYPT,
    Dovecot's default scheme (or ours, if it is Argon2)."""
    if stored.startswith("{") and "}" in stored:
        scheme, rest = stored[1:].split("}", 1)
        scheme = scheme.upper()
        # Dovecot's encodings suffixes: {SSHA512.b64}, {SHA256.HEX}
        if scheme.endswith(".B64"):
            scheme = scheme[:-4]
        return scheme, rest
    if stored.startswith("$argon2"):
        return "ARGON2", stored
    return "CRYPT", stored


def hash_password(password: str) -> str:
    """A new hash of ``password``, ours: bare Argon2id."""
    return _argon2.hash(password)


def check(stored: str) -> str | None:
    """Why ``stored`` cannot be used as a password hash, or None if it can."""
    if not stored:
        return "empty password field"
    scheme, rest = _split(stored)
    if scheme in _CLEAR:
        return f"{{{scheme}}} keeps the password in the clear; import a hash (e.g. {{ARGON2ID}}, {{SHA512-CRYPT}})"
    if scheme in ("ARGON2", "ARGON2ID", "ARGON2I"):
        try:
            _argon2.check_needs_rehash(rest)  # parses the parameters
        except (InvalidHashError, ValueError):
            return f"not an Argon2 hash: {rest[:20]!r}"
        return None
    if scheme in _CRYPT_SCHEMES:
        if not rest.startswith(_CRYPT_SCHEMES[scheme]):
            return f"{{{scheme}}} hash does not start with {_CRYPT_SCHEMES[scheme]}"
        scheme = "CRYPT"
    if scheme == "BLF-CRYPT":
        if not rest.startswith(_BCRYPT_PREFIXES):
            return "{BLF-CRYPT} hash does not start with $2y$, $2b$ or $2a$"
        scheme = "CRYPT"
    if scheme == "CRYPT":
        return _check_crypt(rest)
    if scheme in _SALTED or scheme in _UNSALTED:
        digest = (_SALTED.get(scheme) or _UNSALTED[scheme])().digest_size
        try:
            raw = base64.b64decode(rest, validate=True)
        except binascii.Error:
            return f"{{{scheme}}} value is not base64"
        if (scheme in _SALTED and len(raw) <= digest) or (
            scheme in _UNSALTED and len(raw) != digest
        ):
            return f"{{{scheme}}} value has the wrong length ({len(raw)} bytes)"
        return None
    if scheme == "PBKDF2":
        parts = rest.split("$")
        try:
            ok = len(parts) == 5 and parts[1] == "1" and int(parts[3]) > 0
            ok = ok and len(bytes.fromhex(parts[4])) > 0
        except ValueError:
            ok = False
        return None if ok else "{PBKDF2} value is not $1$salt$rounds$hex"
    return f"unknown password scheme {{{scheme}}}"


def _check_crypt(rest: str) -> str | None:
    if rest.startswith(_BCRYPT_PREFIXES):
        return None if len(rest) == 60 else "bcrypt hash is not 60 characters"
    for prefix, handler in _CRYPT_PREFIXES.items():
        if rest.startswith(prefix):
            return None if handler.identify(rest) else f"malformed {prefix} crypt hash"
    if des_crypt.identify(rest):
        return None
    return f"unknown crypt hash {rest[:8]!r}"


def verify(stored: str, password: str) -> bool:
    """Does ``password`` match ``stored``? False for a hash ``check`` refuses."""
    if check(stored) is not None:
        return False
    scheme, rest = _split(stored)
    secret = password.encode("utf-8")
    if scheme.startswith("ARGON2"):
        try:
            return _argon2.verify(rest, secret)  # argon2id or argon2i, from the hash
        except (VerificationError, InvalidHashError):
            return False
    if scheme in _SALTED:
        raw = base64.b64decode(rest)
        size = _SALTED[scheme]().digest_size
        digest, salt = raw[:size], raw[size:]
        return hmac.compare_digest(_SALTED[scheme](secret + salt).digest(), digest)
    if scheme in _UNSALTED:
        return hmac.compare_digest(_UNSALTED[scheme](secret).digest(), base64.b64decode(rest))
    if scheme == "PBKDF2":
        _, _, pbkdf2_salt, rounds, hexdigest = rest.split("$")
        want = bytes.fromhex(hexdigest)
        got = hashlib.pbkdf2_hmac("sha1", secret, pbkdf2_salt.encode(), int(rounds), len(want))
        return hmac.compare_digest(got, want)
    # every crypt(3) form: {CRYPT}, {SHA512-CRYPT}, {BLF-CRYPT}, bare
    if rest.startswith(_BCRYPT_PREFIXES):
        return bcrypt.checkpw(secret[:72], rest.encode())
    for prefix, handler in _CRYPT_PREFIXES.items():
        if rest.startswith(prefix):
            return handler.verify(secret, rest)
    return des_crypt.verify(secret, rest)
