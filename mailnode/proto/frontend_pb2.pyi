from mailnode.proto import queue_pb2 as _queue_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImapFrame(_message.Message):
    __slots__ = ("shard", "mailbox", "data", "peer", "ready")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    shard: int
    mailbox: str
    data: bytes
    peer: str
    ready: bool
    def __init__(self, shard: _Optional[int] = ..., mailbox: _Optional[str] = ..., data: _Optional[bytes] = ..., peer: _Optional[str] = ..., ready: _Optional[bool] = ...) -> None: ...

class CommitRequest(_message.Message):
    __slots__ = ("shard", "record", "retry")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    shard: int
    record: bytes
    retry: bool
    def __init__(self, shard: _Optional[int] = ..., record: _Optional[bytes] = ..., retry: _Optional[bool] = ...) -> None: ...

class CommitReply(_message.Message):
    __slots__ = ("lsn", "duplicate")
    LSN_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    duplicate: bool
    def __init__(self, lsn: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("shard", "address")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    address: str
    def __init__(self, shard: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class LookupReply(_message.Message):
    __slots__ = ("exists", "over_quota")
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    OVER_QUOTA_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    over_quota: str
    def __init__(self, exists: _Optional[bool] = ..., over_quota: _Optional[str] = ...) -> None: ...

class AuthRequest(_message.Message):
    __slots__ = ("shard", "user", "password")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    shard: int
    user: str
    password: str
    def __init__(self, shard: _Optional[int] = ..., user: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class AuthReply(_message.Message):
    __slots__ = ("mailbox",)
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    mailbox: str
    def __init__(self, mailbox: _Optional[str] = ...) -> None: ...

class MailboxRequest(_message.Message):
    __slots__ = ("shard", "mailbox", "session")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    shard: int
    mailbox: str
    session: str
    def __init__(self, shard: _Optional[int] = ..., mailbox: _Optional[str] = ..., session: _Optional[str] = ...) -> None: ...

class MessageRef(_message.Message):
    __slots__ = ("uid", "size")
    UID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    uid: str
    size: int
    def __init__(self, uid: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class MailboxReply(_message.Message):
    __slots__ = ("messages", "busy")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[MessageRef]
    busy: bool
    def __init__(self, messages: _Optional[_Iterable[_Union[MessageRef, _Mapping]]] = ..., busy: _Optional[bool] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("shard", "mailbox", "uid", "session")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    shard: int
    mailbox: str
    uid: str
    session: str
    def __init__(self, shard: _Optional[int] = ..., mailbox: _Optional[str] = ..., uid: _Optional[str] = ..., session: _Optional[str] = ...) -> None: ...

class ReadReply(_message.Message):
    __slots__ = ("found", "data")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    found: bool
    data: bytes
    def __init__(self, found: _Optional[bool] = ..., data: _Optional[bytes] = ...) -> None: ...

class ExpungeRequest(_message.Message):
    __slots__ = ("shard", "mailbox", "uids", "session")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    UIDS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    shard: int
    mailbox: str
    uids: _containers.RepeatedScalarFieldContainer[str]
    session: str
    def __init__(self, shard: _Optional[int] = ..., mailbox: _Optional[str] = ..., uids: _Optional[_Iterable[str]] = ..., session: _Optional[str] = ...) -> None: ...

class ExpungeReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
