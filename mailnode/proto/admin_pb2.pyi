from mailnode.proto import queue_pb2 as _queue_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MailboxRequest(_message.Message):
    __slots__ = ("address", "action", "folder", "new_name", "uids", "flags", "mode", "target")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    UIDS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    address: str
    action: str
    folder: str
    new_name: str
    uids: _containers.RepeatedScalarFieldContainer[int]
    flags: _containers.RepeatedScalarFieldContainer[str]
    mode: str
    target: str
    def __init__(self, address: _Optional[str] = ..., action: _Optional[str] = ..., folder: _Optional[str] = ..., new_name: _Optional[str] = ..., uids: _Optional[_Iterable[int]] = ..., flags: _Optional[_Iterable[str]] = ..., mode: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class FolderInfo(_message.Message):
    __slots__ = ("name", "uidvalidity", "uidnext", "highest_modseq", "subscribed", "messages")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UIDVALIDITY_FIELD_NUMBER: _ClassVar[int]
    UIDNEXT_FIELD_NUMBER: _ClassVar[int]
    HIGHEST_MODSEQ_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    subscribed: bool
    messages: int
    def __init__(self, name: _Optional[str] = ..., uidvalidity: _Optional[int] = ..., uidnext: _Optional[int] = ..., highest_modseq: _Optional[int] = ..., subscribed: _Optional[bool] = ..., messages: _Optional[int] = ...) -> None: ...

class MessageInfo(_message.Message):
    __slots__ = ("uid", "name", "size", "flags", "modseq", "internal_ns")
    UID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    MODSEQ_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_NS_FIELD_NUMBER: _ClassVar[int]
    uid: int
    name: str
    size: int
    flags: _containers.RepeatedScalarFieldContainer[str]
    modseq: int
    internal_ns: int
    def __init__(self, uid: _Optional[int] = ..., name: _Optional[str] = ..., size: _Optional[int] = ..., flags: _Optional[_Iterable[str]] = ..., modseq: _Optional[int] = ..., internal_ns: _Optional[int] = ...) -> None: ...

class MailboxReply(_message.Message):
    __slots__ = ("folders", "messages", "lsn")
    FOLDERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    folders: _containers.RepeatedCompositeFieldContainer[FolderInfo]
    messages: _containers.RepeatedCompositeFieldContainer[MessageInfo]
    lsn: int
    def __init__(self, folders: _Optional[_Iterable[_Union[FolderInfo, _Mapping]]] = ..., messages: _Optional[_Iterable[_Union[MessageInfo, _Mapping]]] = ..., lsn: _Optional[int] = ...) -> None: ...

class UserInfoReply(_message.Message):
    __slots__ = ("address", "shard", "messages", "bytes", "quota_bytes", "quota_messages", "folders")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    FOLDERS_FIELD_NUMBER: _ClassVar[int]
    address: str
    shard: int
    messages: int
    bytes: int
    quota_bytes: int
    quota_messages: int
    folders: _containers.RepeatedCompositeFieldContainer[FolderInfo]
    def __init__(self, address: _Optional[str] = ..., shard: _Optional[int] = ..., messages: _Optional[int] = ..., bytes: _Optional[int] = ..., quota_bytes: _Optional[int] = ..., quota_messages: _Optional[int] = ..., folders: _Optional[_Iterable[_Union[FolderInfo, _Mapping]]] = ...) -> None: ...

class QuotaRequest(_message.Message):
    __slots__ = ("scope", "bytes", "messages")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    scope: str
    bytes: int
    messages: int
    def __init__(self, scope: _Optional[str] = ..., bytes: _Optional[int] = ..., messages: _Optional[int] = ...) -> None: ...

class ImportedUser(_message.Message):
    __slots__ = ("address", "password_hash", "quota_bytes", "quota_messages", "has_quota")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    HAS_QUOTA_FIELD_NUMBER: _ClassVar[int]
    address: str
    password_hash: str
    quota_bytes: int
    quota_messages: int
    has_quota: bool
    def __init__(self, address: _Optional[str] = ..., password_hash: _Optional[str] = ..., quota_bytes: _Optional[int] = ..., quota_messages: _Optional[int] = ..., has_quota: _Optional[bool] = ...) -> None: ...

class ImportRequest(_message.Message):
    __slots__ = ("shard", "users")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    users: _containers.RepeatedCompositeFieldContainer[ImportedUser]
    def __init__(self, shard: _Optional[int] = ..., users: _Optional[_Iterable[_Union[ImportedUser, _Mapping]]] = ...) -> None: ...

class ImportReply(_message.Message):
    __slots__ = ("added", "updated", "unchanged", "lsn")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    added: int
    updated: int
    unchanged: int
    lsn: int
    def __init__(self, added: _Optional[int] = ..., updated: _Optional[int] = ..., unchanged: _Optional[int] = ..., lsn: _Optional[int] = ...) -> None: ...

class StoreRequest(_message.Message):
    __slots__ = ("shard", "action")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    shard: int
    action: str
    def __init__(self, shard: _Optional[int] = ..., action: _Optional[str] = ...) -> None: ...

class StoreReply(_message.Message):
    __slots__ = ("ok", "problems", "mailboxes", "messages", "replayed")
    OK_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    MAILBOXES_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    mailboxes: int
    messages: int
    replayed: int
    def __init__(self, ok: _Optional[bool] = ..., problems: _Optional[_Iterable[str]] = ..., mailboxes: _Optional[int] = ..., messages: _Optional[int] = ..., replayed: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("after", "limit")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after: str
    limit: int
    def __init__(self, after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListUsersReply(_message.Message):
    __slots__ = ("users", "more")
    USERS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserReply]
    more: bool
    def __init__(self, users: _Optional[_Iterable[_Union[UserReply, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

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
