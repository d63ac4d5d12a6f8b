from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueueEntry(_message.Message):
    __slots__ = ("shard", "queue_id", "lsn", "sender", "arrival_ns", "size", "recipients", "next_attempt_ns", "attempts", "held", "last_reply")
    class LastReplyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SHARD_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    ARRIVAL_NS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_NS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    LAST_REPLY_FIELD_NUMBER: _ClassVar[int]
    shard: int
    queue_id: str
    lsn: int
    sender: str
    arrival_ns: int
    size: int
    recipients: _containers.RepeatedScalarFieldContainer[str]
    next_attempt_ns: int
    attempts: int
    held: bool
    last_reply: _containers.ScalarMap[str, str]
    def __init__(self, shard: _Optional[int] = ..., queue_id: _Optional[str] = ..., lsn: _Optional[int] = ..., sender: _Optional[str] = ..., arrival_ns: _Optional[int] = ..., size: _Optional[int] = ..., recipients: _Optional[_Iterable[str]] = ..., next_attempt_ns: _Optional[int] = ..., attempts: _Optional[int] = ..., held: _Optional[bool] = ..., last_reply: _Optional[_Mapping[str, str]] = ...) -> None: ...

class QueueRequest(_message.Message):
    __slots__ = ("shard", "action", "ids", "all")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    shard: int
    action: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    def __init__(self, shard: _Optional[int] = ..., action: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ...) -> None: ...

class QueueReply(_message.Message):
    __slots__ = ("entries", "headers", "errors")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[QueueEntry]
    headers: bytes
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, entries: _Optional[_Iterable[_Union[QueueEntry, _Mapping]]] = ..., headers: _Optional[bytes] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...
