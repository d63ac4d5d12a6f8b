"""What a replaced primary carries over from its cut-off tail (F1).

When a node that was primary rejoins as a spare and its journal diverged, the
records past the divergence point are not in the new primary's history. Which
of them did a client (or a remote MX) see succeed?

- Under ``sync`` in a cluster, a commit is answered with a spare's copy (then
  the promoted spare holds it, so it is not in the tail) or *alone* (degraded),
  and an answer alone is preceded by a durable ``AnsweredAlone`` record naming
  it. So exactly the records named there were acknowledged; everything else in
  the tail got 451, or no answer at all (the sender retries: RFC 1047's window).
- Otherwise (``async``/``local``, or a standalone node) every commit is answered
  at the local fsync: every record counts, except messages taken back by an
  ``Aborted`` record.

Carried over, as new transactions on the new primary: messages (their
recipients minus mailboxes that expunged them in the tail, their relay
recipients minus those a tail ``DeliveryResult`` delivered), expunges of
messages the new primary has, ``DELIVERED`` outcomes of messages it has (so it
does not relay them again), and user changes. Not carried: deferrals, bounces
and queue commands (the new primary's queue decides those again) and epoch
markers.

Also carried, the other way round: take-backs. A tail ``Aborted`` record of a
message *before* the divergence point says "answered 451" for a message the new
primary holds (its spare copy's acknowledgement was lost in the cut). The
sender's retry is a new transaction, so unless it is taken back there too, the
message is stored twice. The new primary decides (``Shard.take_back``): it
refuses when it answered 250 for that queue id itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailnode.proto.journal_pb2 import DeliveryResult, JournalRecord

CARRIED = (
    "message_accepted",
    "expunged",
    "delivery_result",
    "user_added",
    "user_deleted",
    "password_changed",
)
SUBMITTED = (*CARRIED, "aborted")  # what Submit takes: carried records and take-backs


@dataclass
class Plan:
    records: list[JournalRecord] = field(default_factory=list)  # to submit, in journal order
    messages: int = 0  # messages among them
    unanswered: int = 0  # records skipped: answered 451 or never answered
    take_backs: int = 0  # Aborted records of messages the new primary holds
    dropped: int = 0  # acknowledged records that need not be carried (see above)


_UID = re.compile(r"\.S\d+L(\d+)\.")


def _uid_lsn(uid: str) -> int | None:
    """The lsn in a Maildir name made by store.maildir.message_name ("<t>.S<shard>L<lsn>.…")."""
    m = _UID.search(uid)
    return int(m.group(1)) if m else None


def plan(frames, divergence: int, *, marked_only: bool, origin: str) -> Plan:
    """The records to re-submit from ``frames`` (the tail from ``divergence`` on).

    ``marked_only``: only records named by an AnsweredAlone were acknowledged."""
    frames = list(frames)
    alone = {
        lsn
        for fr in frames
        if fr.record.WhichOneof("body") == "answered_alone"
        for lsn in fr.record.answered_alone.lsns
    }
    aborted = {fr.record.aborted.lsn for fr in frames if fr.record.WhichOneof("body") == "aborted"}

    def acknowledged(fr) -> bool:
        return fr.lsn in alone if marked_only else True

    # What the tail itself undid: mailboxes that expunged a tail message, relay
    # recipients a tail delivery result delivered.
    expunged_here: dict[int, set[str]] = {}
    delivered_here: dict[int, set[str]] = {}
    for fr in frames:
        kind = fr.record.WhichOneof("body")
        if kind == "expunged" and acknowledged(fr):
            for uid in fr.record.expunged.uids:
                lsn = _uid_lsn(uid)
                if lsn is not None and lsn >= divergence:
                    expunged_here.setdefault(lsn, set()).add(fr.record.expunged.mailbox)
        elif kind == "delivery_result" and fr.record.delivery_result.message_lsn >= divergence:
            # Delivered is a fact at the remote MX whether or not the result was answered.
            delivered_here.setdefault(fr.record.delivery_result.message_lsn, set()).update(
                r.address
                for r in fr.record.delivery_result.recipients
                if r.outcome == DeliveryResult.DELIVERED
            )

    out = Plan()
    for fr in frames:
        kind = fr.record.WhichOneof("body")
        if kind == "aborted" and fr.record.aborted.lsn < divergence:
            rec = JournalRecord()
            rec.aborted.CopyFrom(fr.record.aborted)
            out.records.append(rec)
            out.take_backs += 1
            continue
        if kind in ("epoch_started", "hole", "answered_alone", "aborted", "retry_answered"):
            continue
        if not acknowledged(fr) or (kind == "message_accepted" and fr.lsn in aborted):
            out.unanswered += 1
            continue
        if kind not in CARRIED:
            out.dropped += 1
            continue
        rec = JournalRecord()
        if kind == "message_accepted":
            m = rec.message_accepted
            m.CopyFrom(fr.record.message_accepted)
            m.salvaged_from = f"{origin}/{fr.record.epoch}/{fr.lsn}"
            gone = expunged_here.get(fr.lsn, set())
            done = delivered_here.get(fr.lsn, set())
            keep = [r for r in m.recipients if r not in gone]
            relay = [r for r in m.relay_recipients if r not in done]
            del m.recipients[:], m.relay_recipients[:]
            m.recipients.extend(keep)
            m.relay_recipients.extend(relay)
            if not keep and not relay:
                out.dropped += 1
                continue
            out.messages += 1
        elif kind == "expunged":
            uids = [u for u in fr.record.expunged.uids if (_uid_lsn(u) or 0) < divergence]
            if not uids:
                out.dropped += 1
                continue
            rec.expunged.mailbox = fr.record.expunged.mailbox
            rec.expunged.uids.extend(uids)
        elif kind == "delivery_result":
            r = fr.record.delivery_result
            delivered = [x for x in r.recipients if x.outcome == DeliveryResult.DELIVERED]
            if r.message_lsn >= divergence or not delivered:
                out.dropped += 1
                continue
            rec.delivery_result.message_lsn = r.message_lsn
            rec.delivery_result.destination = r.destination
            rec.delivery_result.remote = r.remote
            rec.delivery_result.recipients.extend(delivered)
        else:
            getattr(rec, kind).CopyFrom(getattr(fr.record, kind))
        out.records.append(rec)
    return out
