"""Client side of the admin service; gRPC errors become AdminError here."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from mailnode.proto import admin_pb2, admin_pb2_grpc, queue_pb2
from mailnode.wire import TOKEN_KEY


class AdminError(Exception):
    pass


class AdminClient:
    def __init__(self, address: str, token: str, timeout: float = 30.0):
        self.address = address
        self._metadata = ((TOKEN_KEY, token),)
        self._timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._stub = admin_pb2_grpc.AdminStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method: str, request, timeout: float | None = None):
        """Any unary method of the admin service by name."""
        return self._call(method, request, timeout)

    def _call(self, method: str, request, timeout: float | None = None):
        try:
            return getattr(self._stub, method)(
                request, metadata=self._metadata, timeout=timeout or self._timeout
            )
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise AdminError(
                    f"node at {self.address} is not reachable ({e.code().name.lower()})"
                ) from None
            raise AdminError(e.details() or e.code().name) from None

    def add_user(self, address: str, password: str) -> admin_pb2.UserReply:
        return self._call("AddUser", admin_pb2.UserRequest(address=address, password=password))

    def set_password(self, address: str, password: str) -> admin_pb2.UserReply:
        return self._call("SetPassword", admin_pb2.UserRequest(address=address, password=password))

    def delete_user(self, address: str) -> admin_pb2.UserReply:
        return self._call("DeleteUser", admin_pb2.UserRequest(address=address))

    def list_users(self, page: int = 0) -> Iterator[admin_pb2.UserReply]:
        """Every user of the node, ``page`` at a time (0: the server's page size)."""
        after = ""
        while True:
            reply = self._call("ListUsers", admin_pb2.ListUsersRequest(after=after, limit=page))
            yield from reply.users
            if not reply.more or not reply.users:
                return
            after = reply.users[-1].address

    def promote(self, shard: int) -> admin_pb2.RoleReply:
        return self._call("Promote", admin_pb2.ShardRequest(shard=shard))

    def demote(self, shard: int, primary: str = "") -> admin_pb2.RoleReply:
        return self._call("Demote", admin_pb2.ShardRequest(shard=shard, primary=primary))

    def status(self) -> admin_pb2.StatusReply:
        return self._call("Status", admin_pb2.StatusRequest())

    def queue(
        self, action: str, ids: list[str] | None = None, all: bool = False
    ) -> queue_pb2.QueueReply:
        return self._call("Queue", queue_pb2.QueueRequest(action=action, ids=ids or [], all=all))

    def backup(self, shard: int):
        """The Backup stream (chunks); gRPC errors surface while iterating."""
        return self._stub.Backup(
            admin_pb2.BackupRequest(shard=shard), metadata=self._metadata, timeout=3600
        )

    def base_backup(self, shard: int) -> admin_pb2.BaseBackupReply:
        return self._call("BaseBackup", admin_pb2.BackupRequest(shard=shard), timeout=3600)
