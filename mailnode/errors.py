"""The error vocabulary: what can go wrong, in two families, and what each wire says.

``Unavailable`` is temporary: nothing was done, or what was done is taken back,
and the client should try again (SMTP 4xx, POP3 ``-ERR [SYS/TEMP]``, gRPC
UNAVAILABLE and friends, which the router holds through). ``Refused`` is
permanent: trying again will not help (SMTP 5xx, POP3 ``-ERR``, gRPC
INVALID_ARGUMENT and friends).

Each boundary translates once: gRPC servicers with :func:`grpc_errors`, the
router back from a gRPC status with :func:`from_grpc`, the SMTP and POP3 front
ends by catching a family. kazoo's exceptions stop in ``coordinator.model``
(``CoordinationError``), gRPC's in the router and the clients that call out.
"""

from __future__ import annotations

import functools
import inspect

import grpc


class MailclusterError(Exception):
    """The root: anything the product raises on purpose."""


# -- temporary ----------------------------------------------------------------------------
class Unavailable(MailclusterError):
    """Temporary: not done (or taken back); the same request may succeed later."""


class NotPrimary(Unavailable):
    """This node is not (or no longer) the primary of the shard."""


class NotReplicated(Unavailable):
    """A commit that did not become durable where the policy demands; it is taken back."""


class SparesTimedOut(NotReplicated):
    """Strict sync policy: no in-sync spare acknowledged the commit in time."""


class ArchiveTimedOut(NotReplicated):
    """``remote_sync``: the remote-site archive did not acknowledge the commit in time."""


class InSyncUnpublished(NotReplicated):
    """The in-sync set could not be written to ZooKeeper before a degraded commit (F2)."""


class JournalError(Unavailable):
    """The journal cannot take writes (disk error, closed, or fenced)."""


class JournalFenced(JournalError):
    """append() on a journal whose shard is not primary at the journal's epoch (F3)."""


class HoldExpired(Unavailable):
    """No primary took the work within the hold timeout: the sender gets 451 and retries."""


class PrimaryUnreachable(Unavailable):
    """The shard's primary could not be asked (a gRPC failure that is not "moved")."""


class OverQuota(Unavailable):
    """Every local recipient of a message is over its storage or message quota: 452 4.2.2
    (temporary: the subscriber may make room)."""


# -- permanent ----------------------------------------------------------------------------
class Refused(MailclusterError):
    """Permanent: the request itself is wrong; the same request will fail again."""


class NotFound(Refused):
    """What the request names does not exist."""


class AlreadyExists(Refused):
    """What the request would create exists already."""


class NotOwner(Refused):
    """A mailbox operation from a session that does not hold the mailbox's lock."""


# -- gRPC ---------------------------------------------------------------------------------
# One table, most specific first. The router treats the first three as "moved or
# not done: hold and retry" (router.MOVED), so a NotPrimary at one method means
# what it means at every other.
GRPC_CODES: tuple[tuple[type[MailclusterError], grpc.StatusCode], ...] = (
    (NotPrimary, grpc.StatusCode.FAILED_PRECONDITION),
    (OverQuota, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotReplicated, grpc.StatusCode.ABORTED),
    (JournalError, grpc.StatusCode.ABORTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (NotOwner, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (Refused, grpc.StatusCode.INVALID_ARGUMENT),
)


def grpc_code(error: MailclusterError) -> grpc.StatusCode:
    for kind, code in GRPC_CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def grpc_errors(method):
    """Decorate a servicer method (unary or server-streaming): a MailclusterError it
    raises ends the call with its status code from GRPC_CODES and its text."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self, request, context):
            try:
                async for reply in method(self, request, context):
                    yield reply
            except MailclusterError as e:
                await context.abort(grpc_code(e), str(e))

        return stream

    @functools.wraps(method)
    async def unary(self, request, context):
        try:
            return await method(self, request, context)
        except MailclusterError as e:
            await context.abort(grpc_code(e), str(e))

    return unary


# What a caller of another node makes of its status: the inverse of GRPC_CODES for
# the permanent family; everything else is temporary (the router holds on MOVED).
_FROM_GRPC = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: OverQuota,
    grpc.StatusCode.PERMISSION_DENIED: NotOwner,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: Refused,
}


def from_grpc(error: grpc.aio.AioRpcError, peer: str) -> MailclusterError:
    kind = _FROM_GRPC.get(error.code(), PrimaryUnreachable)
    return kind(f"{peer}: {error.code().name.lower()}: {error.details()}")
