"""The front end's Router holding work through a failover (mailnode/cluster/router.py):
waiting for the shard map to name a primary, HoldExpired after the hold timeout, and giving
up a remote attempt once the map names another primary. A fake node and agent; the work
is a plain coroutine, so no gRPC server or channel is involved. Timeouts: tens of ms."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import grpc
import pytest

from mailnode.cluster.agent import Standalone
from mailnode.cluster.router import LOCAL, HoldExpired, Router
from mailnode.errors import (
    NotFound,
    NotOwner,
    NotPrimary,
    NotReplicated,
    OverQuota,
    PrimaryUnreachable,
    Refused,
)
from mailnode.proto.journal_pb2 import JournalRecord

HOLD = 0.08


class Agent:
    clustered = True
    connected = True

    def __init__(self, primary: str | None = None):
        self.primary = primary

    def primary_address(self, shard_id: int) -> str | None:
        return self.primary


def node(primary: str | None = None, accepting: bool = False):
    shard = SimpleNamespace(accepting=accepting, state=SimpleNamespace(users={"u@example.test"}))
    return SimpleNamespace(shards={0: shard}, agent=Agent(primary), cluster_metadata=())


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "details")


class Work:
    """``call(target, attempt)`` for Router._held: answers from a script per attempt."""

    def __init__(self, *script):
        self.script = list(script)  # per attempt: a value, an exception, or a Future
        self.calls: list[tuple[str, int]] = []

    def __call__(self, target: str, attempt: int):
        self.calls.append((target, attempt))
        step = self.script[min(attempt, len(self.script) - 1)]

        async def run():
            if isinstance(step, BaseException):
                raise step
            if isinstance(step, asyncio.Future):
                return await step
            return step

        return run()


def later(delay: float, fn) -> None:
    asyncio.get_running_loop().call_later(delay, fn)


def move(router: Router, primary: str | None, accepting: bool | None = None):
    """What the agent does when the shard map changes."""

    def act():
        router.node.agent.primary = primary
        if accepting is not None:
            router.node.shards[0].accepting = accepting
        router.changed()

    return act


# -- the target ---------------------------------------------------------------------------------


def test_the_target_is_local_while_this_node_is_an_accepting_primary():
    r = Router(node(primary="10.0.0.2:7070", accepting=True), HOLD)
    assert r.target(0) == LOCAL


def test_the_target_is_the_primary_the_shard_map_names():
    assert Router(node(primary="10.0.0.2:7070"), HOLD).target(0) == "10.0.0.2:7070"


def test_there_is_no_target_without_a_primary_or_on_a_standalone_node():
    assert Router(node(primary=None), HOLD).target(0) is None
    standalone = node()
    standalone.agent = Standalone()
    assert Router(standalone, HOLD).target(0) is None


# -- holding -----------------------------------------------------------------------------------


def test_work_for_an_available_primary_runs_once_without_holding():
    r = Router(node(accepting=True), HOLD)
    work = Work(42)
    assert asyncio.run(r._held(0, work)) == 42
    assert work.calls == [(LOCAL, 0)]


def test_with_no_primary_the_hold_expires_after_the_hold_timeout():
    r = Router(node(primary=None), HOLD)
    work = Work(1)
    t0 = time.monotonic()
    with pytest.raises(HoldExpired, match=r"^shard 0: no primary$"):
        asyncio.run(r._held(0, work))
    assert HOLD <= time.monotonic() - t0 < HOLD + 0.5
    assert work.calls == []  # nothing was ever tried


def test_a_per_call_hold_overrides_the_routers_timeout():
    r = Router(node(primary=None), hold_timeout=30.0)
    t0 = time.monotonic()
    with pytest.raises(HoldExpired):
        asyncio.run(r._held(0, Work(1), hold=0.03))
    assert time.monotonic() - t0 < 1.0


def test_held_work_runs_as_soon_as_a_primary_appears():
    r = Router(node(primary=None), hold_timeout=5.0)
    work = Work("done")

    async def main():
        later(0.02, move(r, "10.0.0.3:7070"))
        t0 = time.monotonic()
        result = await r._held(0, work)
        return result, time.monotonic() - t0

    result, took = asyncio.run(main())
    assert result == "done" and took < 0.4  # woken by the change, not by a poll
    assert work.calls == [("10.0.0.3:7070", 1)]  # attempt 1: a retry, deduplicated by qid


@pytest.mark.parametrize(
    "refusal",
    [
        NotPrimary("shard 0 is not primary"),
        NotReplicated("no spare acknowledged"),
        rpc_error(grpc.StatusCode.UNAVAILABLE),
        rpc_error(grpc.StatusCode.FAILED_PRECONDITION),
        rpc_error(grpc.StatusCode.ABORTED),
    ],
)
def test_a_refused_attempt_is_held_and_retried_at_the_next_primary(refusal):
    r = Router(node(primary="10.0.0.1:7070"), hold_timeout=5.0)
    work = Work(refusal, "ok")

    async def main():
        later(0.02, move(r, "10.0.0.2:7070"))
        return await r._held(0, work)

    assert asyncio.run(main()) == "ok"
    assert work.calls == [("10.0.0.1:7070", 0), ("10.0.0.2:7070", 1)]


def test_the_expired_hold_names_the_last_refusal():
    r = Router(node(primary="10.0.0.1:7070"), HOLD)
    with pytest.raises(HoldExpired) as e:
        asyncio.run(r._held(0, Work(rpc_error(grpc.StatusCode.UNAVAILABLE))))
    assert str(e.value) == "shard 0: 10.0.0.1:7070: unavailable: details"


def test_an_attempt_is_repeated_while_the_hold_lasts():
    r = Router(node(primary=None, accepting=True), hold_timeout=0.1)
    work = Work(NotPrimary("shard 0 is not primary on n1 (draining for a switchover)"))

    async def main():
        for n in range(1, 4):  # three map changes: three more attempts
            later(0.02 * n, move(r, None))
        with pytest.raises(HoldExpired, match="draining for a switchover"):
            await r._held(0, work)

    asyncio.run(main())
    assert [a for _, a in work.calls][:4] == [0, 1, 2, 3]


def test_an_rpc_error_that_does_not_mean_moved_is_raised_at_once_in_the_vocabulary():
    r = Router(node(primary="10.0.0.1:7070"), hold_timeout=5.0)
    work = Work(rpc_error(grpc.StatusCode.INVALID_ARGUMENT))
    with pytest.raises(Refused, match=r"^10\.0\.0\.1:7070: invalid_argument: details$"):
        asyncio.run(r._held(0, work))
    assert len(work.calls) == 1


@pytest.mark.parametrize(
    "code, kind",
    [
        (grpc.StatusCode.PERMISSION_DENIED, NotOwner),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, OverQuota),  # 452 4.2.2 at the front end
        (grpc.StatusCode.UNAUTHENTICATED, PrimaryUnreachable),
        (grpc.StatusCode.INTERNAL, PrimaryUnreachable),
    ],
)
def test_no_grpc_error_leaks_past_the_router(code, kind):
    r = Router(node(primary="10.0.0.1:7070"), hold_timeout=5.0)
    with pytest.raises(kind):
        asyncio.run(r._held(0, Work(rpc_error(code))))


def test_another_exception_of_the_work_is_not_held():
    r = Router(node(accepting=True), hold_timeout=5.0)
    with pytest.raises(ValueError):
        asyncio.run(r._held(0, Work(ValueError("bad record"))))


# -- giving up a remote attempt ------------------------------------------------------------------


def test_a_remote_attempt_is_abandoned_when_the_map_names_another_primary():
    r = Router(node(primary="10.0.0.1:7070"), hold_timeout=0.15)

    async def main():
        hung = asyncio.get_running_loop().create_future()  # the old primary never answers
        work = Work(hung, "from the new primary")
        later(0.02, move(r, "10.0.0.2:7070"))
        result = await r._held(0, work)
        await asyncio.sleep(0)  # let the cancellation land
        return result, work.calls, hung.cancelled()

    result, calls, cancelled = asyncio.run(main())
    assert result == "from the new primary"
    assert calls == [("10.0.0.1:7070", 0), ("10.0.0.2:7070", 1)]
    assert cancelled  # the unanswered call is not left running


def test_a_remote_attempt_is_abandoned_when_this_node_becomes_the_primary():
    r = Router(node(primary="10.0.0.1:7070"), hold_timeout=0.15)

    async def main():
        work = Work(asyncio.get_running_loop().create_future(), "local")
        later(0.02, move(r, None, accepting=True))
        return await r._held(0, work), work.calls

    assert asyncio.run(main()) == ("local", [("10.0.0.1:7070", 0), (LOCAL, 1)])


def test_the_retry_at_the_newly_named_primary_follows_at_once():
    r = Router(node(primary="10.0.0.1:7070"), hold_timeout=0.3)

    async def main():
        work = Work(asyncio.get_running_loop().create_future(), "ok")
        later(0.02, move(r, "10.0.0.2:7070"))
        t0 = time.monotonic()
        await r._held(0, work)
        return time.monotonic() - t0

    assert asyncio.run(main()) < 0.1


def test_a_remote_attempt_survives_map_changes_that_keep_its_primary_or_name_none():
    r = Router(node(primary="10.0.0.1:7070"), hold_timeout=5.0)

    async def main():
        slow = asyncio.get_running_loop().create_future()
        work = Work(slow)
        later(0.01, move(r, "10.0.0.1:7070"))  # the same primary
        later(0.02, move(r, None))  # no primary for a moment: the attempt may still answer
        later(0.03, lambda: slow.set_result("answered"))
        return await r._held(0, work), work.calls

    assert asyncio.run(main()) == ("answered", [("10.0.0.1:7070", 0)])


def test_a_local_attempt_is_never_abandoned_for_a_map_change():
    r = Router(node(primary=None, accepting=True), hold_timeout=5.0)

    async def main():
        slow = asyncio.get_running_loop().create_future()
        later(0.01, move(r, "10.0.0.9:7070"))
        later(0.03, lambda: slow.set_result("committed here"))
        work = Work(slow)
        return await r._held(0, work), work.calls

    assert asyncio.run(main()) == ("committed here", [(LOCAL, 0)])


# -- commit(): the retry flag ----------------------------------------------------------------------


def test_a_held_local_commit_is_retried_as_a_retry_of_the_same_record():
    n = node(accepting=True)
    seen = []

    async def commit_message(record, *, retry):
        seen.append((record.message_accepted.queue_id, retry))
        if len(seen) == 1:
            raise NotPrimary("lease lapsed")
        return 1234, False

    n.shards[0].commit_message = commit_message
    r = Router(n, hold_timeout=5.0)
    record = JournalRecord()
    record.message_accepted.queue_id = "abc"

    async def main():
        later(0.02, r.changed)
        return await r.commit(0, record)

    assert asyncio.run(main()) == 1234
    assert seen == [("abc", False), ("abc", True)]
