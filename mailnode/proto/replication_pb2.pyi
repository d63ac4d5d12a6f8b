from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FollowRequest(_message.Message):
    __slots__ = ("start", "ack")
    START_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    start: FollowStart
    ack: Ack
    def __init__(self, start: _Optional[_Union[FollowStart, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ...) -> None: ...

class FollowStart(_message.Message):
    __slots__ = ("shard", "follower", "from_lsn", "last_epoch")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    FOLLOWER_FIELD_NUMBER: _ClassVar[int]
    FROM_LSN_FIELD_NUMBER: _ClassVar[int]
    LAST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    shard: int
    follower: str
    from_lsn: int
    last_epoch: int
    def __init__(self, shard: _Optional[int] = ..., follower: _Optional[str] = ..., from_lsn: _Optional[int] = ..., last_epoch: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("durable_lsn",)
    DURABLE_LSN_FIELD_NUMBER: _ClassVar[int]
    durable_lsn: int
    def __init__(self, durable_lsn: _Optional[int] = ...) -> None: ...

class FollowReply(_message.Message):
    __slots__ = ("epoch", "frames", "truncate", "heartbeat", "need_snapshot")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    NEED_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    frames: Frames
    truncate: Truncate
    heartbeat: Heartbeat
    need_snapshot: NeedSnapshot
    def __init__(self, epoch: _Optional[int] = ..., frames: _Optional[_Union[Frames, _Mapping]] = ..., truncate: _Optional[_Union[Truncate, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., need_snapshot: _Optional[_Union[NeedSnapshot, _Mapping]] = ...) -> None: ...

class Frames(_message.Message):
    __slots__ = ("lsn", "data")
    LSN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    data: bytes
    def __init__(self, lsn: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Truncate(_message.Message):
    __slots__ = ("lsn",)
    LSN_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    def __init__(self, lsn: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("committed_lsn",)
    COMMITTED_LSN_FIELD_NUMBER: _ClassVar[int]
    committed_lsn: int
    def __init__(self, committed_lsn: _Optional[int] = ...) -> None: ...

class NeedSnapshot(_message.Message):
    __slots__ = ("first_lsn",)
    FIRST_LSN_FIELD_NUMBER: _ClassVar[int]
    first_lsn: int
    def __init__(self, first_lsn: _Optional[int] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("shard", "follower", "snapshot_id", "resume_after")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    FOLLOWER_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_AFTER_FIELD_NUMBER: _ClassVar[int]
    shard: int
    follower: str
    snapshot_id: str
    resume_after: str
    def __init__(self, shard: _Optional[int] = ..., follower: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., resume_after: _Optional[str] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("snapshot_id", "lsn", "epoch", "path", "offset", "data", "end_of_file", "end_of_snapshot", "epochs_json")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    END_OF_FILE_FIELD_NUMBER: _ClassVar[int]
    END_OF_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_JSON_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    lsn: int
    epoch: int
    path: str
    offset: int
    data: bytes
    end_of_file: bool
    end_of_snapshot: bool
    epochs_json: str
    def __init__(self, snapshot_id: _Optional[str] = ..., lsn: _Optional[int] = ..., epoch: _Optional[int] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., end_of_file: _Optional[bool] = ..., end_of_snapshot: _Optional[bool] = ..., epochs_json: _Optional[str] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("shard", "record", "origin")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    shard: int
    record: bytes
    origin: str
    def __init__(self, shard: _Optional[int] = ..., record: _Optional[bytes] = ..., origin: _Optional[str] = ...) -> None: ...

class SubmitReply(_message.Message):
    __slots__ = ("lsn",)
    LSN_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    def __init__(self, lsn: _Optional[int] = ...) -> None: ...

class FenceRequest(_message.Message):
    __slots__ = ("shard", "epoch", "primary", "primary_node")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_NODE_FIELD_NUMBER: _ClassVar[int]
    shard: int
    epoch: int
    primary: str
    primary_node: str
    def __init__(self, shard: _Optional[int] = ..., epoch: _Optional[int] = ..., primary: _Optional[str] = ..., primary_node: _Optional[str] = ...) -> None: ...

class FenceReply(_message.Message):
    __slots__ = ("epoch", "end_lsn")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    END_LSN_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    end_lsn: int
    def __init__(self, epoch: _Optional[int] = ..., end_lsn: _Optional[int] = ...) -> None: ...
