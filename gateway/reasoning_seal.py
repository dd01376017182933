"""Claude's signed thinking, sealed for a Responses client to carry between turns.

A stateless Responses client (`store: false`, or any client that sends a turn's output items
back as the next turn's input) keeps reasoning items for the gateway. Each one's
`encrypted_content` holds a thinking block sealed with AES-256-GCM under the gateway's key:
nothing of the thinking or its signature is readable without the key, and a changed byte does
not open. The first key seals; every listed key opens, so a rotation adds the new key first
and keeps the old one until the items it sealed have aged out.

An item is bound to the client it was made for (its name is the cipher's associated data): one
client replaying another's item gets a reasoning item that does not open, so nothing of the
other's thinking goes upstream on its behalf. What the item's plaintext `summary` says is the
client's to read, as the Responses API intends; the thinking itself and its signature are not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_PREFIX = "fgw1."  # a format version, so a later format can be told apart
_AAD = b"foundry-gateway reasoning item v1"
_NONCE = 12
_KEY_ID = 4


def _aad(client: str | None) -> bytes:
    return _AAD if client is None else _AAD + b"\x00client:" + client.encode()


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:_KEY_ID]


def parse_keys(text: str) -> list[bytes]:
    """The keys of a key file: one base64 key of 32 bytes a line, the sealing key first."""
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            key = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"line {number} is not base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"line {number} holds {len(key)} bytes; a key is {KEY_BYTES} (head -c32 /dev/urandom | base64)"
            )
        keys.append(key)
    if not keys:
        raise ValueError("the file holds no key")
    return keys


class ReasoningSeal:
    __slots__ = ("_openers", "_sealer", "_sealer_id", "ephemeral")

    def __init__(self, keys: Sequence[bytes] | None = None) -> None:
        # No keys configured: one made for this process. Items then open only on this replica and
        # until it restarts; anywhere else they count as reasoning the gateway cannot open.
        self.ephemeral = not keys
        keys = list(keys) if keys else [AESGCM.generate_key(bit_length=256)]
        self._sealer = AESGCM(keys[0])
        self._sealer_id = _key_id(keys[0])
        self._openers = {_key_id(key): AESGCM(key) for key in reversed(keys)}

    def seal(self, block: Mapping[str, Any], client: str | None = None) -> str:
        """The thinking block sealed for `client` (None: inbound auth is off, everyone is one caller)."""
        nonce = os.urandom(_NONCE)
        sealed = self._sealer.encrypt(nonce, orjson.dumps(block), _aad(client))
        return _PREFIX + base64.urlsafe_b64encode(self._sealer_id + nonce + sealed).decode()

    def open(self, token: Any, client: str | None = None) -> dict[str, Any] | None:
        """The thinking block a token seals; None for anything this gateway's keys did not seal for `client`."""
        if not isinstance(token, str) or not token.startswith(_PREFIX):
            return None
        try:
            raw = base64.urlsafe_b64decode(token[len(_PREFIX) :])
        except (binascii.Error, ValueError):
            return None
        opener = self._openers.get(raw[:_KEY_ID])
        if opener is None or len(raw) < _KEY_ID + _NONCE + 16:
            return None
        try:
            block = orjson.loads(opener.decrypt(raw[_KEY_ID : _KEY_ID + _NONCE], raw[_KEY_ID + _NONCE :], _aad(client)))
        except (InvalidTag, orjson.JSONDecodeError):
            return None
        return block if isinstance(block, dict) else None
