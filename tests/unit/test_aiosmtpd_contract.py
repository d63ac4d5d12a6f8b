"""What mailnode.smtp relies on inside aiosmtpd 1.4 (pyproject bounds it <1.5).

``MailSMTP.__init__`` sets aiosmtpd's per-connection state itself (without the
per-connection introspection of ``SMTP.__init__``), and both SMTP classes call
private methods. A new aiosmtpd that renames, adds or drops any of them must
fail here, naming what changed, rather than as a broken SMTP session.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
from pathlib import Path

import aiosmtpd
import aiosmtpd.smtp
import pytest
from aiosmtpd.smtp import SMTP

from mailnode.smtp import protocol, submission
from mailnode.smtp.protocol import MailSMTP

OURS = (Path(protocol.__file__), Path(submission.__file__))
# Set by aiosmtpd when a connection is made (SMTP._cb_client_connected), not in __init__.
SET_ON_CONNECT = {"_reader", "_writer"}


class _Handler:
    async def handle_DATA(self, server, session, envelope):  # pragma: no cover - never called
        return "250 OK"


@pytest.fixture
def instances():
    loop = asyncio.new_event_loop()
    try:
        real = SMTP(_Handler(), loop=loop)
        ours = MailSMTP(
            _Handler(),
            data_size_limit=1024,
            hostname="h",
            ident="i",
            timeout=5.0,
            tls_context=None,
            loop=loop,
        )
        yield real, ours
    finally:
        loop.close()


def test_version_is_the_one_the_subclass_was_written_for():
    assert aiosmtpd.__version__.startswith("1.4."), aiosmtpd.__version__


def test_init_sets_every_attribute_aiosmtpd_init_sets(instances):
    real, ours = instances
    missing = sorted(set(vars(real)) - set(vars(ours)))
    assert not missing, (
        f"aiosmtpd's SMTP.__init__ now sets {missing}, which MailSMTP.__init__ does not"
    )


def _referenced_names() -> set[str]:
    """self.X and super().X inside our SMTP subclasses, plus what we import from aiosmtpd.smtp."""
    names: set[str] = set()
    for path in OURS:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "aiosmtpd.smtp":
                names |= {a.name for a in node.names}
            if isinstance(node, ast.ClassDef) and {getattr(b, "id", "") for b in node.bases} & {
                "SMTP",
                "MailSMTP",
            }:
                for sub in ast.walk(node):
                    if (
                        isinstance(sub, ast.Attribute)
                        and isinstance(sub.value, ast.Name)
                        and sub.value.id == "self"
                    ) or (
                        isinstance(sub, ast.Attribute)
                        and isinstance(sub.value, ast.Call)
                        and getattr(sub.value.func, "id", "") == "super"
                    ):
                        names.add(sub.attr)
    return names


def test_every_name_used_exists_in_aiosmtpd(instances):
    real, ours = instances
    ours_defined = set(vars(ours)) | {
        n for cls in (MailSMTP, submission.SubmissionSMTP) for n in vars(cls)
    }
    ours_defined |= {"implicit_tls"}  # SubmissionSMTP's own instance state
    gone = []
    for name in sorted(_referenced_names()):
        if name in SET_ON_CONNECT:
            if f"self.{name} = " not in inspect.getsource(SMTP._cb_client_connected):
                gone.append(f"{name} (no longer set by SMTP._cb_client_connected)")
        elif not (
            hasattr(SMTP, name)
            or name in vars(real)
            or hasattr(aiosmtpd.smtp, name)
            or name in ours_defined
        ):
            gone.append(name)
    assert not gone, f"aiosmtpd no longer has what mailnode.smtp uses: {gone}"


def test_stream_reader_limit_is_where_the_bulk_data_reader_raises_it():
    # MailSMTP._read_data raises asyncio.StreamReader._limit for the DATA phase.
    async def make():  # inside a running loop: StreamReader() would otherwise create one
        return asyncio.StreamReader(limit=123)

    assert asyncio.run(make())._limit == 123
