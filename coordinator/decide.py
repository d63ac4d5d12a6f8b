"""What the leading coordinator decides, from one snapshot of the cluster.

One function per situation, each returning its decision as a sentence (and
the change to make to ``shards/<n>``, applied with compare-and-set). Pure
logic: no ZooKeeper here, so it is tested with plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from coordinator.model import Cluster, ShardInfo


class Kind(StrEnum):
    """What a decision is (its value is what ZooKeeper's history and the metrics say)."""

    NOTE = "note"
    ASSIGN = "assign"
    FAILOVER = "failover"
    FORCED_FAILOVER = "forced-failover"
    SWITCHOVER = "switchover"
    SWITCHOVER_DONE = "switchover-done"
    SWITCHOVER_REFUSED = "switchover-refused"  # also: aborted or ended

    @property
    def ends_switchover(self) -> bool:
        return self in (Kind.SWITCHOVER_DONE, Kind.SWITCHOVER_REFUSED)


@dataclass(frozen=True)
class Decision:
    shard: int
    sentence: str
    info: ShardInfo
    changes: dict | None = None  # None: nothing to write (a decision not to act)
    kind: Kind = Kind.NOTE
    warning: str = ""  # what acting on it may cost, for the operator to read first


def _load(cluster: Cluster, name: str) -> int:
    return sum((i.primary == name) * 2 + (name in i.spares) for i in cluster.shards.values())


def _least_loaded(cluster: Cluster, names, pending: dict[str, int] | None = None) -> str | None:
    """The node with the least work (a primary counts double), counting decisions of this cycle."""
    pending = pending or {}
    names = sorted(names, key=lambda n: (_load(cluster, n) + pending.get(n, 0), n))
    return names[0] if names else None


def assign_primary(
    cluster: Cluster, info: ShardInfo, now: float, pending: dict[str, int]
) -> Decision | None:
    pick = _least_loaded(cluster, cluster.members, pending)
    if pick is None:
        return Decision(info.id, f"shard {info.id} has no primary and no node is registered", info)
    pending[pick] = pending.get(pick, 0) + 2
    return Decision(
        info.id,
        f"assigned {pick} as primary of shard {info.id}: the shard had none",
        info,
        {
            "primary": pick,
            "spares": [s for s in info.spares if s != pick],
            "epoch": info.epoch + 1,
            "in_sync": [],
        },
        Kind.ASSIGN,
    )


def fail_over(cluster: Cluster, info: ShardInfo, now: float) -> Decision:
    n, dead = info.id, info.primary
    if cluster.paused:
        return Decision(
            n, f"not failing over shard {n}: {dead}'s session expired, but failover is paused", info
        )
    wait = cluster.config.get("failover_min_interval", 30.0) - (now - info.last_failover)
    if info.last_failover and wait > 0:
        return Decision(
            n,
            f"not failing over shard {n} again for {wait:.0f}s: its last failover was "
            f"{now - info.last_failover:.0f}s ago (flap damping)",
            info,
        )
    candidates = [s for s in info.in_sync if s in cluster.members and s in info.spares]
    if not candidates:
        return Decision(
            n,
            f"cannot fail over shard {n}: {dead}'s session expired and no in-sync spare is "
            f"alive (spares {list(info.spares)}, in sync {list(info.in_sync)})",
            info,
        )
    # Every candidate holds every acknowledged commit (the primary answers a commit only
    # when every published in-sync spare has it); the one holding the most journal (its lsn
    # as it last reported) loses the least of what was in flight. A node configured as a
    # spare only breaks ties.
    pick = max(
        candidates,
        key=lambda s: (
            cluster.members[s].shard(n).get("lsn", 0),
            cluster.members[s].data.get("prefer") == "spare",
            s,
        ),
    )
    spares = [s for s in info.spares if s != pick] + [dead]  # the old primary rejoins as a spare
    return Decision(
        n,
        f"promoted {pick} for shard {n}: {dead}'s session expired",
        info,
        {
            "primary": pick,
            "spares": spares,
            "epoch": info.epoch + 1,
            "in_sync": [],
            "last_failover": now,
            "failover_started": now,
        },
        Kind.FAILOVER,
    )


def assign_spare(
    cluster: Cluster, info: ShardInfo, now: float, pending: dict[str, int]
) -> Decision | None:
    want = cluster.config.get("spares_per_shard", 1)
    live = [s for s in info.spares if s in cluster.members]
    if len(live) >= want:
        return None
    idle = [m for m in cluster.members if m != info.primary and m not in info.spares]
    pick = _least_loaded(cluster, idle, pending)
    if pick is None:
        return None
    pending[pick] = pending.get(pick, 0) + 1
    dead = [s for s in info.spares if s not in cluster.members]
    spares = live + dead[-2:] + [pick]  # keep a few dead ones: they rejoin as spares when back
    return Decision(
        info.id,
        f"assigned {pick} as spare of shard {info.id}: it had {len(live)} live spare(s) of {want}",
        info,
        {"spares": spares},
        Kind.ASSIGN,
    )


def forced_failover(cluster: Cluster, shard: int, to: str, now: float) -> Decision:
    """The operator's ``mailctl failover``: make ``to`` primary now, whatever it lacks.

    The warning says what may be lost; a Decision without changes is a refusal."""
    info = cluster.shards.get(shard)
    if info is None:
        refused = ShardInfo(shard, "", (), 0, (), 0.0, -1)
        return Decision(shard, f"no shard {shard}: the cluster has {len(cluster.shards)}", refused)
    if to not in cluster.members:
        return Decision(shard, f"{to} is not an alive node of the cluster", info)
    if to == info.primary:
        return Decision(shard, f"{to} is already primary of shard {shard}", info)
    primary = cluster.members.get(info.primary)
    have = cluster.members[to].shard(shard).get("lsn", 0)
    if primary is not None:
        plsn = primary.shard(shard).get("lsn", 0)
        loss = (
            f"the primary {info.primary} last reported lsn {plsn}: up to {max(0, plsn - have)} "
            "bytes of acknowledged mail may be lost"
        )
    else:
        loss = f"the primary {info.primary} is gone, so what it had beyond that is unknown"
    warning = (
        f"{to} holds shard {shard}'s journal up to lsn {have}; {loss}"
        + ("" if to in info.in_sync else f"; {to} is NOT in the in-sync set")
        + ". The old primary salvages what it accepted alone if it comes back."
    )
    spares = [s for s in info.spares if s != to] + ([info.primary] if info.primary else [])
    return Decision(
        shard,
        f"forced failover of shard {shard} to {to} at epoch {info.epoch + 1} by operator",
        info,
        {
            "primary": to,
            "spares": spares,
            "epoch": info.epoch + 1,
            "in_sync": [],
            "last_failover": now,
            "draining": None,
            "switchover_to": None,
        },
        Kind.FORCED_FAILOVER,
        warning,
    )


SWITCHOVER_TIMEOUT = 30.0


def switch_over(cluster: Cluster, info: ShardInfo, req: dict, now: float) -> Decision | None:
    """Drain the primary, wait until the target holds everything it committed, then swap.

    A Decision whose kind ``ends_switchover`` also ends the request."""
    n, old = info.id, info.primary
    draining = info.extra.get("draining")
    target = (
        req.get("to")
        or draining_target(info)
        or max(
            (s for s in info.in_sync if s in cluster.members),
            default="",
            key=lambda s: cluster.members[s].shard(n).get("lsn", 0),
        )
    )
    if not draining:
        if now < req.get("at", 0):
            return None
        if old not in cluster.members:
            return Decision(
                n,
                f"refused switchover of shard {n}: its primary {old} is not alive",
                info,
                None,
                Kind.SWITCHOVER_REFUSED,
            )
        if target not in info.in_sync or target not in cluster.members:
            return Decision(
                n,
                f"refused switchover of shard {n} to {target or 'a spare'}: not an alive "
                f"in-sync spare (in sync: {list(info.in_sync)})",
                info,
                None,
                Kind.SWITCHOVER_REFUSED,
            )
        return Decision(
            n,
            f"draining {old} for a switchover of shard {n} to {target}",
            info,
            {"draining": old, "switchover_to": target, "draining_since": now},
            Kind.SWITCHOVER,
        )
    if draining != old:  # the drained primary was replaced meanwhile (a failover)
        return Decision(
            n,
            f"ended switchover of shard {n}: {draining}, being drained, was replaced by "
            f"{old} in a failover",
            info,
            {"draining": None, "switchover_to": None},
            Kind.SWITCHOVER_REFUSED,
        )
    drained = cluster.members.get(old, None)
    drained_lsn = drained.shard(n).get("drained_lsn") if drained else None
    have = cluster.members[target].shard(n).get("lsn", 0) if target in cluster.members else -1
    if drained_lsn is not None and have >= drained_lsn:
        spares = [s for s in info.spares if s != target] + [old]
        return Decision(
            n,
            f"switched shard {n} over from {old} to {target} at epoch {info.epoch + 1} "
            f"(drained at lsn {drained_lsn})",
            info,
            {
                "primary": target,
                "spares": spares,
                "epoch": info.epoch + 1,
                "in_sync": [],
                "draining": None,
                "switchover_to": None,
                "last_failover": now,
            },
            Kind.SWITCHOVER_DONE,
        )
    if now - info.extra.get("draining_since", now) > SWITCHOVER_TIMEOUT:
        return Decision(
            n,
            f"aborted switchover of shard {n}: {target} did not catch up with {old} within "
            f"{SWITCHOVER_TIMEOUT:.0f}s; {old} serves again",
            info,
            {"draining": None, "switchover_to": None},
            Kind.SWITCHOVER_REFUSED,
        )
    return None


def draining_target(info: ShardInfo) -> str:
    return info.extra.get("switchover_to") or ""


def decide(cluster: Cluster, now: float) -> list[Decision]:
    out = []
    pending: dict[str, int] = {}
    req = cluster.switchover
    for n, info in sorted(cluster.shards.items()):
        if req is not None and req.get("shard") == n and info.primary in cluster.members:
            d = switch_over(cluster, info, req, now)
            if d is not None:
                out.append(d)
            continue
        if not info.primary:
            d = None if cluster.paused else assign_primary(cluster, info, now, pending)
        elif info.primary not in cluster.members:
            d = fail_over(cluster, info, now)
        else:
            d = assign_spare(cluster, info, now, pending)
        if d is not None:
            out.append(d)
    return out
