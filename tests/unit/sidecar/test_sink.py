"""The token file: atomic under concurrent readers, right mode, never replaced by a useless token."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import orjson
import pytest

from foundry_common.token_file import Token
from token_sidecar.sink import RefusedToken, read_token, write_token


def token(n: int, ttl: float = 3600) -> Token:
    # Long tokens, so a torn write would be visible as broken JSON.
    return Token(f"tok-{n}-" + "x" * 20000, time.time() + ttl)


def test_mode_directory_and_content(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "token.json"
    write_token(path, Token("abc", time.time() + 60, refresh_on=time.time() + 30))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    data = orjson.loads(path.read_bytes())
    assert data["access_token"] == "abc" and data["token_type"] == "Bearer" and isinstance(data["expires_on"], int)
    write_token(path, Token("def", time.time() + 60), mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["token.json"], "no temp file left behind"


@pytest.mark.parametrize("bad", [Token("", time.time() + 60), Token("abc", time.time() - 1)])
def test_a_valid_file_is_never_replaced_by_a_useless_token(tmp_path: Path, bad: Token) -> None:
    path = tmp_path / "token.json"
    write_token(path, Token("good", time.time() + 60))
    with pytest.raises(RefusedToken):
        write_token(path, bad)
    current = read_token(path)
    assert current is not None and current.access_token == "good"


def test_failed_write_cleans_up_and_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token.json"
    write_token(path, Token("good", time.time() + 60))

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_token(path, Token("new", time.time() + 60))
    assert os.listdir(tmp_path) == ["token.json"]
    assert orjson.loads(path.read_bytes())["access_token"] == "good"


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    write_token(path, token(0))
    stop = threading.Event()
    seen: set[str] = set()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                data = orjson.loads(path.read_bytes())
                seen.add(data["access_token"].split("-")[1])
            except Exception as exc:
                errors.append(repr(exc))

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for n in range(1, 200):
        write_token(path, token(n))
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert len(seen) > 1, "readers saw the file change"


def test_read_token_tolerates_missing_and_garbage(tmp_path: Path) -> None:
    assert read_token(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{")
    assert read_token(tmp_path / "bad.json") is None
    assert "secret" not in repr(Token("secret", 1.0))
