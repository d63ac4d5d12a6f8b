from mailnode.proto import queue_pb2 as _queue_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ShardRequest(_message.Message):
    __slots__ = ("shard", "primary")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    shard: int
    primary: str
    def __init__(self, shard: _Optional[int] = ..., primary: _Optional[str] = ...) -> None: ...

class RoleReply(_message.Message):
    __slots__ = ("sentence", "status")
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    sentence: str
    status: ShardStatus
    def __init__(self, sentence: _Optional[str] = ..., status: _Optional[_Union[ShardStatus, _Mapping]] = ...) -> None: ...

class SpareStatus(_message.Message):
    __slots__ = ("name", "acked_lsn", "lag_bytes", "lag_seconds", "in_sync", "connected")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACKED_LSN_FIELD_NUMBER: _ClassVar[int]
    LAG_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    acked_lsn: int
    lag_bytes: int
    lag_seconds: float
    in_sync: bool
    connected: bool
    def __init__(self, name: _Optional[str] = ..., acked_lsn: _Optional[int] = ..., lag_bytes: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., in_sync: _Optional[bool] = ..., connected: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("shard", "epoch", "committed_lsn", "applied_lsn", "segments", "journal_bytes", "users", "role", "primary", "policy", "degraded", "spares")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_LSN_FIELD_NUMBER: _ClassVar[int]
    APPLIED_LSN_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    SPARES_FIELD_NUMBER: _ClassVar[int]
    shard: int
    epoch: int
    committed_lsn: int
    applied_lsn: int
    segments: int
    journal_bytes: int
    users: int
    role: str
    primary: str
    policy: str
    degraded: bool
    spares: _containers.RepeatedCompositeFieldContainer[SpareStatus]
    def __init__(self, shard: _Optional[int] = ..., epoch: _Optional[int] = ..., committed_lsn: _Optional[int] = ..., applied_lsn: _Optional[int] = ..., segments: _Optional[int] = ..., journal_bytes: _Optional[int] = ..., users: _Optional[int] = ..., role: _Optional[str] = ..., primary: _Optional[str] = ..., policy: _Optional[str] = ..., degraded: _Optional[bool] = ..., spares: _Optional[_Iterable[_Union[SpareStatus, _Mapping]]] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("node", "shards")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    node: str
    shards: _containers.RepeatedCompositeFieldContainer[ShardStatus]
    def __init__(self, node: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[ShardStatus, _Mapping]]] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("shard",)
    SHARD_FIELD_NUMBER: _ClassVar[int]
    shard: int
    def __init__(self, shard: _Optional[int] = ...) -> None: ...

class BackupChunk(_message.Message):
    __slots__ = ("path", "offset", "data", "end_of_file", "lsn", "end_lsn", "done", "created_ns", "shard")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    END_OF_FILE_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    END_LSN_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    path: str
    offset: int
    data: bytes
    end_of_file: bool
    lsn: int
    end_lsn: int
    done: bool
    created_ns: int
    shard: int
    def __init__(self, path: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., end_of_file: _Optional[bool] = ..., lsn: _Optional[int] = ..., end_lsn: _Optional[int] = ..., done: _Optional[bool] = ..., created_ns: _Optional[int] = ..., shard: _Optional[int] = ...) -> None: ...

class BaseBackupReply(_message.Message):
    __slots__ = ("lsn", "bytes", "files")
    LSN_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    bytes: int
    files: int
    def __init__(self, lsn: _Optional[int] = ..., bytes: _Optional[int] = ..., files: _Optional[int] = ...) -> None: ...
