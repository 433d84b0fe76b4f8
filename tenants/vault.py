"""Envelope encryption for exchange secrets.

Each tenant has one AES-256-GCM data key, stored wrapped by a master key. Master keys come from the
environment as `MASTER_KEYS="id1:base64key,id0:base64key"`: the first wraps, every one unwraps, so a
rotation is: add a new key first, run `quorum rotate-master-key`, remove the old one. A KMS can take
the place of `LocalMasterKeys` behind the `MasterKeyProvider` interface.

Every ciphertext is bound by its associated data to its tenant, table, row and field: copied to another
row or another tenant, it fails to decrypt.
"""

from __future__ import annotations

import base64
import os
import uuid
from typing import Protocol

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tenants.models import TenantDataKey

_FIELD_VERSION = b"\x01"
_NONCE = 12  # random 96-bit nonces: a data key encrypts far fewer than 2**32 values


class VaultError(Exception):
    """A ciphertext or key that cannot be used. Never carries plaintext or key material."""


class FieldContext(msgspec.Struct, frozen=True):
    """Where a ciphertext belongs; it is the AEAD associated data."""

    tenant_id: uuid.UUID
    table: str
    row_id: uuid.UUID
    field: str

    def associated_data(self) -> bytes:
        return f"quorum:v1:{self.tenant_id}:{self.table}:{self.row_id}:{self.field}".encode()


class MasterKeyProvider(Protocol):
    """Wraps and unwraps tenant data keys. Local keys today; a KMS client fits the same shape."""

    @property
    def active_key_id(self) -> str: ...

    def wrap(self, tenant_id: uuid.UUID, data_key: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, key_id: str, tenant_id: uuid.UUID, wrapped: bytes) -> bytes: ...


class LocalMasterKeys:
    """Master keys from configuration; the first is active."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise VaultError("no master key configured (MASTER_KEYS)")
        for key_id, key in keys:
            if len(key) != 32:
                raise VaultError(f"master key {key_id!r} must be 32 bytes (base64 of 32 random bytes)")
        self._keys = dict(keys)
        self._active = keys[0][0]

    @classmethod
    def from_setting(cls, value: str) -> LocalMasterKeys:
        keys: list[tuple[str, bytes]] = []
        for entry in filter(None, (e.strip() for e in value.split(","))):
            key_id, sep, encoded = entry.partition(":")
            if not sep or not key_id:
                raise VaultError("MASTER_KEYS entries must look like `key-id:base64key`")
            try:
                keys.append((key_id, base64.b64decode(encoded, validate=True)))
            except ValueError:
                raise VaultError(f"master key {key_id!r} is not valid base64") from None
        return cls(keys)

    @property
    def active_key_id(self) -> str:
        return self._active

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def wrap(self, tenant_id: uuid.UUID, data_key: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE)
        aad = f"quorum:dek:{tenant_id}:{self._active}".encode()
        return self._active, nonce + AESGCM(self._keys[self._active]).encrypt(nonce, data_key, aad)

    def unwrap(self, key_id: str, tenant_id: uuid.UUID, wrapped: bytes) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            raise VaultError(f"the data key is wrapped by master key {key_id!r}, which is not configured")
        aad = f"quorum:dek:{tenant_id}:{key_id}".encode()
        try:
            return AESGCM(key).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)
        except InvalidTag:
            raise VaultError("a tenant data key failed to unwrap") from None


def generate_master_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


class Vault:
    """Encrypts and decrypts tenant secrets inside the caller's tenant transaction."""

    def __init__(self, master_keys: MasterKeyProvider) -> None:
        self.master_keys = master_keys

    async def _data_key(self, session: AsyncSession, tenant_id: uuid.UUID) -> bytes:
        row = await session.scalar(select(TenantDataKey).where(TenantDataKey.tenant_id == tenant_id))
        if row is None:
            data_key = AESGCM.generate_key(bit_length=256)
            key_id, wrapped = self.master_keys.wrap(tenant_id, data_key)
            session.add(TenantDataKey(tenant_id=tenant_id, master_key_id=key_id, wrapped_key=wrapped))
            await session.flush()
            return data_key
        return self.master_keys.unwrap(row.master_key_id, tenant_id, row.wrapped_key)

    async def encrypt(self, session: AsyncSession, context: FieldContext, plaintext: str) -> bytes:
        data_key = await self._data_key(session, context.tenant_id)
        nonce = os.urandom(_NONCE)
        return _FIELD_VERSION + nonce + AESGCM(data_key).encrypt(nonce, plaintext.encode(), context.associated_data())

    async def decrypt(self, session: AsyncSession, context: FieldContext, ciphertext: bytes) -> str:
        data_key = await self._data_key(session, context.tenant_id)
        return decrypt_with(data_key, context, ciphertext)


def decrypt_with(data_key: bytes, context: FieldContext, ciphertext: bytes) -> str:
    if not ciphertext or ciphertext[:1] != _FIELD_VERSION:
        raise VaultError(f"unrecognised ciphertext for {context.table}.{context.field}")
    body = ciphertext[1:]
    try:
        return AESGCM(data_key).decrypt(body[:_NONCE], body[_NONCE:], context.associated_data()).decode()
    except InvalidTag:
        raise VaultError(f"ciphertext of {context.table}.{context.field} does not belong to this row") from None
