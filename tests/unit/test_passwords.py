"""Imported password hashes: every scheme Dovecot writes is checked the way Dovecot
checks it. The fixtures were made by Dovecot 2.3 itself (`doveadm pw -s SCHEME -p
'pässword 1'`), so a scheme read differently here fails against the reference."""

from __future__ import annotations

import pytest

from mailnode.passwd_file import parse_passwd_file
from mailnode.passwords import check, hash_password, verify

PASSWORD = "pässword 1"
DOVEADM = [
    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$0yUwNexfqfBPvC95VRZFKA$BPTn2lTMSjHV0fLz1I9AVcudmWsAlSFprDrq7L6rkvQ",
    "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$eJjhBpqkblGQkUPATLfxBQ$3gos4iIVCf7ZGwTLggFaTaJ9rqJIZZMlXF274ymAw+k",
    "{SHA512-CRYPT}$6$dPzVypiWv3ZR/b6g$L2voXGj8moTPnFkmy97g0rdWFkGEE74yTqsupPvgujlXlzNkSrAu5y4mPNQIGa2lIcdS6diLVFSIskAm30E.A.",
    "{SHA256-CRYPT}$5$WMZ4CjwzT4PrwwJl$/1dO8BlIjOmi4A0Idq5S7uMlFxAyBCSts4gD6Yi3VI7",
    "{BLF-CRYPT}$2y$05$JoK8feLoSc87LHiXQKzfsuhJLzAsaaDNRR1WOQWbMyt1DAJ8Sd4Bq",
    "{SSHA512}s4FYJtMO1It8NKZOv0oX9Be0zT3uzbPJocDlQlzjNnB0wnXRM+bxJlDlHl63k1K+KRlXMjnJJ3r5A6NdZVznt92l00M=",
    "{SSHA256}oGgiOYl/Puy2DysNvHALXTbevsLSj8Eq2Y543BD7fG4x6e6z",
    "{SSHA}Seyzo0OiemUAQ9ovE7/bFNC/XNN+nXbw",
    "{SHA512}CKWQ1bFe+6HuV0fkV78KrhRH5bOjFVbkHBnd8vTWw2lc3YVFx8X2I6wtGQoVpZVuVsftC++RLO5GPIvd7H4Lyg==",
    "{MD5-CRYPT}$1$VueiLzUn$uaGTOHiLt4siBN1pGa34v1",
    "{CRYPT}$2y$05$Ev5wsDU6z1zn3daz50jtjOG6YZ2BQBuhGRV62mWMkslS6GgRvObt.",
    "{PBKDF2}$1$ZnWO3STuWyhyDu7R$5000$76706ada3abe613c256a907a5fde62f77aa369c6",
    # Dovecot's default scheme is CRYPT: a bare crypt(3) hash in the file
    "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/",
]
BARE_PASSWORD = "password"  # of the bare $6$ line (openssl passwd -6 -salt saltsalt password)


@pytest.mark.parametrize("stored", DOVEADM, ids=lambda s: s.split("}")[0].strip("{") or s[:3])
def test_dovecot_hashes_verify_and_refuse_a_wrong_password(stored):
    right = BARE_PASSWORD if stored.startswith("$6$") else PASSWORD
    assert check(stored) is None
    assert verify(stored, right)
    assert not verify(stored, right + "x")
    assert not verify(stored, "")


def test_long_passwords_are_cut_at_72_bytes_for_bcrypt_as_crypt_does():
    # doveadm pw -s BLF-CRYPT -p "$(printf 'a%.0s' {1..100})"
    stored = "{BLF-CRYPT}$2y$05$VLhqxwUudc743RlREQsIFOdtVlIVsBU2dani3QXFvGYgEVRa.bFti"
    assert verify(stored, "a" * 100) and verify(stored, "a" * 72)
    assert not verify(stored, "a" * 71)
    # SHA512-CRYPT has no such limit
    stored = "{SHA512-CRYPT}$6$MWuiFK5SsQsVCHm5$t7rw0DvCHENhDR9jL1pfXKbMKUXLAvhhH1FMZbTJy3y3DhLbYWnHkoYVRLwFDrldxVA2u23UvhyTCUGgUwPab0"
    assert verify(stored, "a" * 100) and not verify(stored, "a" * 72)


def test_our_own_argon2id_hashes_still_verify():
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and check(stored) is None
    assert verify(stored, PASSWORD) and not verify(stored, "nope")


@pytest.mark.parametrize(
    "stored, why",
    [
        ("{PLAIN}secret", "in the clear"),
        ("{CLEAR}secret", "in the clear"),
        (
            "{CRAM-MD5}80aec1449634d113e46324e5809848338c28256a7d6da9b7914aa2ece45e4479",
            "in the clear",
        ),
        ("{NOPE}abc", "unknown password scheme {NOPE}"),
        ("{SHA512-CRYPT}$5$abc$def", "does not start with $6$"),
        ("{SSHA512}not base64!", "not base64"),
        ("{SSHA512}AAAA", "wrong length"),
        ("{BLF-CRYPT}$2y$05$short", "60 characters"),
        ("{ARGON2ID}$argon2id$garbage", "not an Argon2 hash"),
        ("plaintext-password", "unknown crypt hash"),
        ("{PBKDF2}$1$salt$5000$nothex", "not $1$salt$rounds$hex"),
        ("", "empty"),
    ],
)
def test_unusable_hashes_are_refused_with_a_reason_and_never_verify(stored, why):
    reason = check(stored)
    assert reason is not None and why in reason
    assert not verify(stored, "secret") and not verify(stored, "")


def test_passwd_file_lines_quota_rules_and_bad_lines_by_number():
    text = "\n".join(
        [
            "# exported from the old system",
            "",
            "Ann@Example.COM:{SHA512-CRYPT}$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/"
            "jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/:1000:1000::/home/ann::"
            "userdb_quota_rule=*:storage=1G userdb_quota_rule2=*:messages=5000 other=x",
            "bob@example.com:{SSHA}Seyzo0OiemUAQ9ovE7/bFNC/XNN+nXbw::::::quota_rule=*:storage=2048",
            "cy@example.com:{SSHA}Seyzo0OiemUAQ9ovE7/bFNC/XNN+nXbw",
            "dee@example.com:{SSHA}Seyzo0OiemUAQ9ovE7/bFNC/XNN+nXbw::::::quota_rule=*:bytes=1000",
            "bob@example.com:{SSHA}Seyzo0OiemUAQ9ovE7/bFNC/XNN+nXbw",  # 7: twice
            "no-at-sign:{SSHA}Seyzo0OiemUAQ9ovE7/bFNC/XNN+nXbw",  # 8
            "eve@example.com:{PLAIN}secret",  # 9
            "fay@example.com:{SSHA}Seyzo0OiemUAQ9ovE7/bFNC/XNN+nXbw::::::quota_rule=Trash:storage=1M",
            "gus@example.com:{SSHA}Seyzo0OiemUAQ9ovE7/bFNC/XNN+nXbw::::::quota_rule=*:storage=lots",
            "just-one-field",  # 12
        ]
    )
    entries, errors = parse_passwd_file(text)
    got = {e.address: (e.line, e.quota_bytes, e.quota_messages) for e in entries}
    assert got == {
        "ann@example.com": (3, 1024**3, 5000),
        "bob@example.com": (4, 2048 * 1024, None),  # a bare storage= is kilobytes
        "cy@example.com": (5, None, None),
        "dee@example.com": (6, 1000, None),
    }
    assert [n for n, _ in errors] == [7, 8, 9, 10, 11, 12]
    reasons = dict(errors)
    assert "also on line 4" in reasons[7]
    assert "local@domain" in reasons[8]
    assert "in the clear" in reasons[9]
    assert "one folder" in reasons[10]
    assert "bad size" in reasons[11]
    assert "user:password" in reasons[12]
