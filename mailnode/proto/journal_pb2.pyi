from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JournalRecord(_message.Message):
    __slots__ = ("lsn", "epoch", "timestamp_ns", "epoch_started", "message_accepted", "expunged", "user_added", "user_deleted", "password_changed", "hole", "aborted", "delivery_result", "queue_control", "answered_alone", "retry_answered", "folder_changed", "flags_changed", "messages_copied", "quota_set", "users_imported")
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
    DELIVERY_RESULT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CONTROL_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_ALONE_FIELD_NUMBER: _ClassVar[int]
    RETRY_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    FOLDER_CHANGED_FIELD_NUMBER: _ClassVar[int]
    FLAGS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_COPIED_FIELD_NUMBER: _ClassVar[int]
    QUOTA_SET_FIELD_NUMBER: _ClassVar[int]
    USERS_IMPORTED_FIELD_NUMBER: _ClassVar[int]
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
    delivery_result: DeliveryResult
    queue_control: QueueControl
    answered_alone: AnsweredAlone
    retry_answered: RetryAnswered
    folder_changed: FolderChanged
    flags_changed: FlagsChanged
    messages_copied: MessagesCopied
    quota_set: QuotaSet
    users_imported: UsersImported
    def __init__(self, lsn: _Optional[int] = ..., epoch: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., epoch_started: _Optional[_Union[EpochStarted, _Mapping]] = ..., message_accepted: _Optional[_Union[MessageAccepted, _Mapping]] = ..., expunged: _Optional[_Union[Expunged, _Mapping]] = ..., user_added: _Optional[_Union[UserAdded, _Mapping]] = ..., user_deleted: _Optional[_Union[UserDeleted, _Mapping]] = ..., password_changed: _Optional[_Union[PasswordChanged, _Mapping]] = ..., hole: _Optional[_Union[Hole, _Mapping]] = ..., aborted: _Optional[_Union[Aborted, _Mapping]] = ..., delivery_result: _Optional[_Union[DeliveryResult, _Mapping]] = ..., queue_control: _Optional[_Union[QueueControl, _Mapping]] = ..., answered_alone: _Optional[_Union[AnsweredAlone, _Mapping]] = ..., retry_answered: _Optional[_Union[RetryAnswered, _Mapping]] = ..., folder_changed: _Optional[_Union[FolderChanged, _Mapping]] = ..., flags_changed: _Optional[_Union[FlagsChanged, _Mapping]] = ..., messages_copied: _Optional[_Union[MessagesCopied, _Mapping]] = ..., quota_set: _Optional[_Union[QuotaSet, _Mapping]] = ..., users_imported: _Optional[_Union[UsersImported, _Mapping]] = ...) -> None: ...

class EpochStarted(_message.Message):
    __slots__ = ("shard", "node")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    shard: int
    node: str
    def __init__(self, shard: _Optional[int] = ..., node: _Optional[str] = ...) -> None: ...

class MessageAccepted(_message.Message):
    __slots__ = ("queue_id", "mail_from", "recipients", "data", "client_address", "helo", "salvaged_from", "relay_recipients", "whole_transaction", "folder", "flags", "internal_ns")
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    MAIL_FROM_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HELO_FIELD_NUMBER: _ClassVar[int]
    SALVAGED_FROM_FIELD_NUMBER: _ClassVar[int]
    RELAY_RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    WHOLE_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_NS_FIELD_NUMBER: _ClassVar[int]
    queue_id: str
    mail_from: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    data: bytes
    client_address: str
    helo: str
    salvaged_from: str
    relay_recipients: _containers.RepeatedScalarFieldContainer[str]
    whole_transaction: bool
    folder: str
    flags: _containers.RepeatedScalarFieldContainer[str]
    internal_ns: int
    def __init__(self, queue_id: _Optional[str] = ..., mail_from: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ..., data: _Optional[bytes] = ..., client_address: _Optional[str] = ..., helo: _Optional[str] = ..., salvaged_from: _Optional[str] = ..., relay_recipients: _Optional[_Iterable[str]] = ..., whole_transaction: _Optional[bool] = ..., folder: _Optional[str] = ..., flags: _Optional[_Iterable[str]] = ..., internal_ns: _Optional[int] = ...) -> None: ...

class DeliveryResult(_message.Message):
    __slots__ = ("message_lsn", "recipients", "destination", "remote", "next_attempt_ns", "dsn", "delay_warned")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DELIVERED: _ClassVar[DeliveryResult.Outcome]
        DEFERRED: _ClassVar[DeliveryResult.Outcome]
        BOUNCED: _ClassVar[DeliveryResult.Outcome]
        EXPIRED: _ClassVar[DeliveryResult.Outcome]
    DELIVERED: DeliveryResult.Outcome
    DEFERRED: DeliveryResult.Outcome
    BOUNCED: DeliveryResult.Outcome
    EXPIRED: DeliveryResult.Outcome
    class Recipient(_message.Message):
        __slots__ = ("address", "outcome", "reply")
        ADDRESS_FIELD_NUMBER: _ClassVar[int]
        OUTCOME_FIELD_NUMBER: _ClassVar[int]
        REPLY_FIELD_NUMBER: _ClassVar[int]
        address: str
        outcome: DeliveryResult.Outcome
        reply: str
        def __init__(self, address: _Optional[str] = ..., outcome: _Optional[_Union[DeliveryResult.Outcome, str]] = ..., reply: _Optional[str] = ...) -> None: ...
    MESSAGE_LSN_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_NS_FIELD_NUMBER: _ClassVar[int]
    DSN_FIELD_NUMBER: _ClassVar[int]
    DELAY_WARNED_FIELD_NUMBER: _ClassVar[int]
    message_lsn: int
    recipients: _containers.RepeatedCompositeFieldContainer[DeliveryResult.Recipient]
    destination: str
    remote: str
    next_attempt_ns: int
    dsn: MessageAccepted
    delay_warned: bool
    def __init__(self, message_lsn: _Optional[int] = ..., recipients: _Optional[_Iterable[_Union[DeliveryResult.Recipient, _Mapping]]] = ..., destination: _Optional[str] = ..., remote: _Optional[str] = ..., next_attempt_ns: _Optional[int] = ..., dsn: _Optional[_Union[MessageAccepted, _Mapping]] = ..., delay_warned: _Optional[bool] = ...) -> None: ...

class QueueControl(_message.Message):
    __slots__ = ("action", "message_lsns", "reason")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        HOLD: _ClassVar[QueueControl.Action]
        RELEASE: _ClassVar[QueueControl.Action]
        DELETE: _ClassVar[QueueControl.Action]
        FLUSH: _ClassVar[QueueControl.Action]
        REQUEUE: _ClassVar[QueueControl.Action]
    HOLD: QueueControl.Action
    RELEASE: QueueControl.Action
    DELETE: QueueControl.Action
    FLUSH: QueueControl.Action
    REQUEUE: QueueControl.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_LSNS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    action: QueueControl.Action
    message_lsns: _containers.RepeatedScalarFieldContainer[int]
    reason: str
    def __init__(self, action: _Optional[_Union[QueueControl.Action, str]] = ..., message_lsns: _Optional[_Iterable[int]] = ..., reason: _Optional[str] = ...) -> None: ...

class Expunged(_message.Message):
    __slots__ = ("mailbox", "uids", "folder", "uid_numbers", "uidvalidity")
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    UIDS_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    UID_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    UIDVALIDITY_FIELD_NUMBER: _ClassVar[int]
    mailbox: str
    uids: _containers.RepeatedScalarFieldContainer[str]
    folder: str
    uid_numbers: _containers.RepeatedScalarFieldContainer[int]
    uidvalidity: int
    def __init__(self, mailbox: _Optional[str] = ..., uids: _Optional[_Iterable[str]] = ..., folder: _Optional[str] = ..., uid_numbers: _Optional[_Iterable[int]] = ..., uidvalidity: _Optional[int] = ...) -> None: ...

class FolderChanged(_message.Message):
    __slots__ = ("mailbox", "action", "folder", "new_name")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CREATE: _ClassVar[FolderChanged.Action]
        RENAME: _ClassVar[FolderChanged.Action]
        DELETE: _ClassVar[FolderChanged.Action]
        SUBSCRIBE: _ClassVar[FolderChanged.Action]
        UNSUBSCRIBE: _ClassVar[FolderChanged.Action]
    CREATE: FolderChanged.Action
    RENAME: FolderChanged.Action
    DELETE: FolderChanged.Action
    SUBSCRIBE: FolderChanged.Action
    UNSUBSCRIBE: FolderChanged.Action
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    mailbox: str
    action: FolderChanged.Action
    folder: str
    new_name: str
    def __init__(self, mailbox: _Optional[str] = ..., action: _Optional[_Union[FolderChanged.Action, str]] = ..., folder: _Optional[str] = ..., new_name: _Optional[str] = ...) -> None: ...

class FlagsChanged(_message.Message):
    __slots__ = ("mailbox", "folder", "uids", "mode", "flags", "uidvalidity")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ADD: _ClassVar[FlagsChanged.Mode]
        REMOVE: _ClassVar[FlagsChanged.Mode]
        REPLACE: _ClassVar[FlagsChanged.Mode]
    ADD: FlagsChanged.Mode
    REMOVE: FlagsChanged.Mode
    REPLACE: FlagsChanged.Mode
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    UIDS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    UIDVALIDITY_FIELD_NUMBER: _ClassVar[int]
    mailbox: str
    folder: str
    uids: _containers.RepeatedScalarFieldContainer[int]
    mode: FlagsChanged.Mode
    flags: _containers.RepeatedScalarFieldContainer[str]
    uidvalidity: int
    def __init__(self, mailbox: _Optional[str] = ..., folder: _Optional[str] = ..., uids: _Optional[_Iterable[int]] = ..., mode: _Optional[_Union[FlagsChanged.Mode, str]] = ..., flags: _Optional[_Iterable[str]] = ..., uidvalidity: _Optional[int] = ...) -> None: ...

class MessagesCopied(_message.Message):
    __slots__ = ("mailbox", "folder", "uids", "target", "move", "uidvalidity")
    MAILBOX_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    UIDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MOVE_FIELD_NUMBER: _ClassVar[int]
    UIDVALIDITY_FIELD_NUMBER: _ClassVar[int]
    mailbox: str
    folder: str
    uids: _containers.RepeatedScalarFieldContainer[int]
    target: str
    move: bool
    uidvalidity: int
    def __init__(self, mailbox: _Optional[str] = ..., folder: _Optional[str] = ..., uids: _Optional[_Iterable[int]] = ..., target: _Optional[str] = ..., move: _Optional[bool] = ..., uidvalidity: _Optional[int] = ...) -> None: ...

class QuotaSet(_message.Message):
    __slots__ = ("scope", "bytes", "messages")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    scope: str
    bytes: int
    messages: int
    def __init__(self, scope: _Optional[str] = ..., bytes: _Optional[int] = ..., messages: _Optional[int] = ...) -> None: ...

class UsersImported(_message.Message):
    __slots__ = ("users", "quotas")
    USERS_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserAdded]
    quotas: _containers.RepeatedCompositeFieldContainer[QuotaSet]
    def __init__(self, users: _Optional[_Iterable[_Union[UserAdded, _Mapping]]] = ..., quotas: _Optional[_Iterable[_Union[QuotaSet, _Mapping]]] = ...) -> None: ...

class UserAdded(_message.Message):
    __slots__ = ("address", "password_hash", "folders")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    FOLDERS_FIELD_NUMBER: _ClassVar[int]
    address: str
    password_hash: str
    folders: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, address: _Optional[str] = ..., password_hash: _Optional[str] = ..., folders: _Optional[_Iterable[str]] = ...) -> None: ...

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
    __slots__ = ("lsn", "uid", "recipients", "reason", "queue_id", "folder")
    LSN_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ID_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    uid: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    queue_id: str
    folder: str
    def __init__(self, lsn: _Optional[int] = ..., uid: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., queue_id: _Optional[str] = ..., folder: _Optional[str] = ...) -> None: ...

class AnsweredAlone(_message.Message):
    __slots__ = ("lsns",)
    LSNS_FIELD_NUMBER: _ClassVar[int]
    lsns: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, lsns: _Optional[_Iterable[int]] = ...) -> None: ...

class RetryAnswered(_message.Message):
    __slots__ = ("lsns",)
    LSNS_FIELD_NUMBER: _ClassVar[int]
    lsns: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, lsns: _Optional[_Iterable[int]] = ...) -> None: ...

class Hole(_message.Message):
    __slots__ = ("lost_bytes", "padding")
    LOST_BYTES_FIELD_NUMBER: _ClassVar[int]
    PADDING_FIELD_NUMBER: _ClassVar[int]
    lost_bytes: int
    padding: bytes
    def __init__(self, lost_bytes: _Optional[int] = ..., padding: _Optional[bytes] = ...) -> None: ...
