from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JournalRecord(_message.Message):
    __slots__ = ("lsn", "epoch", "timestamp_ns", "epoch_started", "message_accepted", "expunged", "user_added", "user_deleted", "password_changed", "hole", "aborted")
    LSN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_STARTED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    EXPUNGED_FIELD_NUMBER: _ClassVar[int]
    USER_ADDED_FIELD_NUMBER: _ClassVar[int]
    USER_DELETED_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_CHANGED_FIELD_NUMBER: _ClassVar[int]
    HOLE_FIELD_NUMBER: _ClassVar[int]
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    epoch: int
    timestamp_ns: int
    epoch_started: EpochStarted
    message_accepted: MessageAccepted
    expunged: Expunged
    user_added: UserAdded
    user_deleted: UserDeleted
    password_changed: PasswordChanged
    hole: Hole
    aborted: Aborted
    def __init__(self, lsn: _Optional[int] = ..., epoch: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., epoch_started: _Optional[_Union[EpochStarted, _Mapping]] = ..., message_accepted: _Optional[_Union[MessageAccepted, _Mapping]] = ..., expunged: _Optional[_Union[Expunged, _Mapping]] = ..., user_added: _Optional[_Union[UserAdded, _Mapping]] = ..., user_deleted: _Optional[_Union[UserDeleted, _Mapping]] = ..., password_changed: _Optional[_Union[PasswordChanged, _Mapping]] = ..., hole: _Optional[_Union[Hole, _Mapping]] = ..., aborted: _Optional[_Union[Aborted, _Mapping]] = ...) -> None: ...

class EpochStarted(_message.Message):
    __slots__ = ("shard", "node")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    shard: int
    node: str
    def __init__(self, shard: _Optional[int] = ..., node: _Optional[str] = ...) -> None: ...

class MessageAccepted(_message.Message):
    __slots__ = ("queue_id", "mail_from", "recipients", "data", "client_address", "helo", "salvaged_from")
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    MAIL_FROM_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HELO_FIELD_NUMBER: _ClassVar[int]
    SALVAGED_FROM_FIELD_NUMBER: _ClassVar[int]
    queue_id: str
    mail_from: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    data: bytes
    client_address: str
    helo: str
    salvaged_from: str
    def __init__(self, queue_id: _Optional[str] = ..., mail_from: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ..., data: _Optional[bytes] = ..., client_address: _Optional[str] = ..., helo: _Optional[str] = ..., salvaged_from: _Optional[str] = ...) -> None: ...

class Expunged(_message.Message):
    __slots__ = ("mailbox", "uids")
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    UIDS_FIELD_NUMBER: _ClassVar[int]
    mailbox: str
    uids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, mailbox: _Optional[str] = ..., uids: _Optional[_Iterable[str]] = ...) -> None: ...

class UserAdded(_message.Message):
    __slots__ = ("address", "password_hash")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    address: str
    password_hash: str
    def __init__(self, address: _Optional[str] = ..., password_hash: _Optional[str] = ...) -> None: ...

class UserDeleted(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: str
    def __init__(self, address: _Optional[str] = ...) -> None: ...

class PasswordChanged(_message.Message):
    __slots__ = ("address", "password_hash")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    address: str
    password_hash: str
    def __init__(self, address: _Optional[str] = ..., password_hash: _Optional[str] = ...) -> None: ...

class Aborted(_message.Message):
    __slots__ = ("lsn", "uid", "recipients", "reason", "queue_id")
    LSN_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    uid: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    queue_id: str
    def __init__(self, lsn: _Optional[int] = ..., uid: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., queue_id: _Optional[str] = ...) -> None: ...

class Hole(_message.Message):
    __slots__ = ("lost_bytes", "padding")
    LOST_BYTES_FIELD_NUMBER: _ClassVar[int]
    PADDING_FIELD_NUMBER: _ClassVar[int]
    lost_bytes: int
    padding: bytes
    def __init__(self, lost_bytes: _Optional[int] = ..., padding: _Optional[bytes] = ...) -> None: ...
