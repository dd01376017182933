"""Reasoning items' sealed thinking: opens with the gateway's keys, and with nothing else."""

from __future__ import annotations

import base64
import os

import pytest

from gateway.reasoning_seal import ReasoningSeal, parse_keys

BLOCK = {"type": "thinking", "thinking": "secret plan", "signature": "sig_abc"}


def key() -> bytes:
    return os.urandom(32)


def test_it_opens_what_it_sealed_and_reveals_nothing() -> None:
    seal = ReasoningSeal([key()])
    sealed = seal.seal(BLOCK)
    assert seal.open(sealed) == BLOCK
    raw = base64.urlsafe_b64decode(sealed.removeprefix("fgw1."))
    assert b"secret plan" not in raw and b"sig_abc" not in raw
    assert seal.seal(BLOCK) != sealed, "a fresh nonce each time"


def test_a_rotation_keeps_old_items_open() -> None:
    old, new = key(), key()
    sealed_before = ReasoningSeal([old]).seal(BLOCK)
    rotated = ReasoningSeal([new, old])
    assert rotated.open(sealed_before) == BLOCK
    assert ReasoningSeal([new]).open(rotated.seal(BLOCK)) == BLOCK, "the first key seals"
    assert ReasoningSeal([new]).open(sealed_before) is None, "once the old key is gone, its items do not open"


def test_every_changed_byte_is_refused() -> None:
    seal = ReasoningSeal([key()])
    raw = bytearray(base64.urlsafe_b64decode(seal.seal(BLOCK).removeprefix("fgw1.")))
    for at in range(len(raw)):
        changed = bytearray(raw)
        changed[at] ^= 1
        assert seal.open("fgw1." + base64.urlsafe_b64encode(bytes(changed)).decode()) is None


@pytest.mark.parametrize("token", [None, 7, "", "fgw1.", "fgw1.%%%", "fgw2.AAAA", "fgw1." + "A" * 200])
def test_anything_else_does_not_open(token: object) -> None:
    assert ReasoningSeal([key()]).open(token) is None


def test_key_files() -> None:
    one, two = key(), key()
    text = f"# rotated 2026-12-01\n{base64.b64encode(one).decode()}\n\n{base64.b64encode(two).decode()}\n"
    assert parse_keys(text) == [one, two]
    for bad, says in [
        ("", "no key"),
        ("not base64!\n", "not base64"),
        (base64.b64encode(b"short").decode(), "5 bytes"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_keys(bad)


def test_an_item_opens_only_for_the_client_it_was_sealed_for() -> None:
    seal = ReasoningSeal([key()])
    block = {"type": "thinking", "thinking": "alice's plan", "signature": "sig"}
    token = seal.seal(block, "alice")
    assert seal.open(token, "alice") == block
    assert seal.open(token, "bob") is None, "bob replaying alice's item sends nothing of her thinking upstream"
    assert seal.open(token) is None and seal.open(seal.seal(block), "alice") is None
