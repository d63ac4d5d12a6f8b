from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UserRequest(_message.Message):
    __slots__ = ("address", "password")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    address: str
    password: str
    def __init__(self, address: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class UserReply(_message.Message):
    __slots__ = ("address", "shard", "lsn")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    address: str
    shard: int
    lsn: int
    def __init__(self, address: _Optional[str] = ..., shard: _Optional[int] = ..., lsn: _Optional[int] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListUsersReply(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserReply]
    def __init__(self, users: _Optional[_Iterable[_Union[UserReply, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShardStatus(_message.Message):
    __slots__ = ("shard", "epoch", "committed_lsn", "applied_lsn", "segments", "journal_bytes", "users")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_LSN_FIELD_NUMBER: _ClassVar[int]
    APPLIED_LSN_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    epoch: int
    committed_lsn: int
    applied_lsn: int
    segments: int
    journal_bytes: int
    users: int
    def __init__(self, shard: _Optional[int] = ..., epoch: _Optional[int] = ..., committed_lsn: _Optional[int] = ..., applied_lsn: _Optional[int] = ..., segments: _Optional[int] = ..., journal_bytes: _Optional[int] = ..., users: _Optional[int] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("node", "shards")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    node: str
    shards: _containers.RepeatedCompositeFieldContainer[ShardStatus]
    def __init__(self, node: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[ShardStatus, _Mapping]]] = ...) -> None: ...
