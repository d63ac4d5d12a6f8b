from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BaseChunk(_message.Message):
    __slots__ = ("shard", "lsn", "path", "offset", "data", "end_of_file", "done", "created_ns", "node", "epoch")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    END_OF_FILE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    shard: int
    lsn: int
    path: str
    offset: int
    data: bytes
    end_of_file: bool
    done: bool
    created_ns: int
    node: str
    epoch: int
    def __init__(self, shard: _Optional[int] = ..., lsn: _Optional[int] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., end_of_file: _Optional[bool] = ..., done: _Optional[bool] = ..., created_ns: _Optional[int] = ..., node: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class BaseInfo(_message.Message):
    __slots__ = ("shard", "lsn", "created_ns", "bytes", "files", "node")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    shard: int
    lsn: int
    created_ns: int
    bytes: int
    files: int
    node: str
    def __init__(self, shard: _Optional[int] = ..., lsn: _Optional[int] = ..., created_ns: _Optional[int] = ..., bytes: _Optional[int] = ..., files: _Optional[int] = ..., node: _Optional[str] = ...) -> None: ...

class GetBaseRequest(_message.Message):
    __slots__ = ("shard", "until_ns")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    UNTIL_NS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    until_ns: int
    def __init__(self, shard: _Optional[int] = ..., until_ns: _Optional[int] = ...) -> None: ...

class ShipRequest(_message.Message):
    __slots__ = ("shard", "epoch", "node", "start_lsn", "data")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    START_LSN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shard: int
    epoch: int
    node: str
    start_lsn: int
    data: bytes
    def __init__(self, shard: _Optional[int] = ..., epoch: _Optional[int] = ..., node: _Optional[str] = ..., start_lsn: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ShipReply(_message.Message):
    __slots__ = ("end_lsn", "first_lsn", "epoch")
    END_LSN_FIELD_NUMBER: _ClassVar[int]
    FIRST_LSN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    end_lsn: int
    first_lsn: int
    epoch: int
    def __init__(self, end_lsn: _Optional[int] = ..., first_lsn: _Optional[int] = ..., epoch: _Optional[int] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("shard", "from_lsn", "until_lsn")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    FROM_LSN_FIELD_NUMBER: _ClassVar[int]
    UNTIL_LSN_FIELD_NUMBER: _ClassVar[int]
    shard: int
    from_lsn: int
    until_lsn: int
    def __init__(self, shard: _Optional[int] = ..., from_lsn: _Optional[int] = ..., until_lsn: _Optional[int] = ...) -> None: ...

class FetchChunk(_message.Message):
    __slots__ = ("start_lsn", "data")
    START_LSN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    start_lsn: int
    data: bytes
    def __init__(self, start_lsn: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShardArchive(_message.Message):
    __slots__ = ("shard", "first_lsn", "end_lsn", "epoch", "segments", "bytes", "last_node", "bases")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    FIRST_LSN_FIELD_NUMBER: _ClassVar[int]
    END_LSN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_NODE_FIELD_NUMBER: _ClassVar[int]
    BASES_FIELD_NUMBER: _ClassVar[int]
    shard: int
    first_lsn: int
    end_lsn: int
    epoch: int
    segments: int
    bytes: int
    last_node: str
    bases: _containers.RepeatedCompositeFieldContainer[BaseInfo]
    def __init__(self, shard: _Optional[int] = ..., first_lsn: _Optional[int] = ..., end_lsn: _Optional[int] = ..., epoch: _Optional[int] = ..., segments: _Optional[int] = ..., bytes: _Optional[int] = ..., last_node: _Optional[str] = ..., bases: _Optional[_Iterable[_Union[BaseInfo, _Mapping]]] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("name", "shards")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    shards: _containers.RepeatedCompositeFieldContainer[ShardArchive]
    def __init__(self, name: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[ShardArchive, _Mapping]]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyResult(_message.Message):
    __slots__ = ("shard", "segments", "records", "end_lsn", "error")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    END_LSN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    shard: int
    segments: int
    records: int
    end_lsn: int
    error: str
    def __init__(self, shard: _Optional[int] = ..., segments: _Optional[int] = ..., records: _Optional[int] = ..., end_lsn: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class VerifyReply(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[VerifyResult]
    def __init__(self, results: _Optional[_Iterable[_Union[VerifyResult, _Mapping]]] = ...) -> None: ...
