"""Token file and API key credentials: re-read on change, fail clearly, never show the secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools.harness import write_token
from gateway.config import ApiKeyAuth, EntraAuth
from gateway.upstream.credentials import ApiKeyCredential, CredentialUnavailable, TokenFileCredential


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reads_token_and_notices_atomic_replacement(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    write_token(path, "tok-one")
    clock = Clock()
    cred = TokenFileCredential(EntraAuth(type="entra", token_file=path, recheck_seconds=1), clock=clock)
    assert cred.headers() == {"authorization": "Bearer tok-one"}
    write_token(path, "tok-two")
    assert cred.headers()["authorization"] == "Bearer tok-one", "re-checked only after recheck_seconds"
    clock.now += 1.5
    assert cred.headers()["authorization"] == "Bearer tok-two"
    assert cred.status().expires_on is not None


def test_kubernetes_symlink_swap_is_noticed(tmp_path: Path) -> None:
    # Kubernetes mounts: token.json -> ..data/token.json, ..data -> ..2026_a; an update swaps ..data.
    for name, token in (("..2026_a", "tok-a"), ("..2026_b", "tok-b")):
        (tmp_path / name).mkdir()
        write_token(tmp_path / name / "token.json", token)
    (tmp_path / "..data").symlink_to("..2026_a")
    (tmp_path / "token.json").symlink_to("..data/token.json")
    cred = TokenFileCredential(EntraAuth(type="entra", token_file=tmp_path / "token.json", recheck_seconds=0))
    assert cred.headers()["authorization"] == "Bearer tok-a"
    (tmp_path / "..data_tmp").symlink_to("..2026_b")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert cred.headers()["authorization"] == "Bearer tok-b"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "does not exist; is the token sidecar running?"),
        (b"{not json", "is not valid JSON"),
        (b'{"access_token": "x"}', "lacks access_token or a numeric expires_on"),
        (b'{"access_token": "", "expires_on": 99999999999}', "lacks access_token"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "token.json"
    if content is not None:
        path.write_bytes(content)
    cred = TokenFileCredential(EntraAuth(type="entra", token_file=path, recheck_seconds=0))
    state = cred.status()
    assert not state.usable and state.reason is not None and reason in state.reason and str(path) in state.reason
    with pytest.raises(CredentialUnavailable, match=reason.split(";")[0]):
        cred.headers()
    # Recovery: a good file written later is picked up.
    write_token(path, "fresh")
    assert cred.headers()["authorization"] == "Bearer fresh"


def test_expired_token_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    write_token(path, "secret-expired-token", expires_in=-30)
    cred = TokenFileCredential(EntraAuth(type="entra", token_file=path, recheck_seconds=0))
    with pytest.raises(CredentialUnavailable) as info:
        cred.headers()
    assert "expired at" in str(info.value) and "secret-expired-token" not in str(info.value)
    assert "secret-expired-token" not in repr(cred)


def test_invalidate_forces_a_reread(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    write_token(path, "one")
    cred = TokenFileCredential(EntraAuth(type="entra", token_file=path, recheck_seconds=3600))
    assert cred.headers()["authorization"] == "Bearer one"
    write_token(path, "two")
    cred.invalidate()
    assert cred.headers()["authorization"] == "Bearer two"


def test_api_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_FOUNDRY_KEY", "k-123456")
    cred = ApiKeyCredential(ApiKeyAuth(type="api_key", key_env="TEST_FOUNDRY_KEY"))
    assert cred.headers() == {"x-api-key": "k-123456", "api-key": "k-123456"}
    assert "k-123456" not in repr(cred)
    monkeypatch.delenv("TEST_FOUNDRY_KEY")
    missing = ApiKeyCredential(ApiKeyAuth(type="api_key", key_env="TEST_FOUNDRY_KEY"))
    with pytest.raises(CredentialUnavailable, match="TEST_FOUNDRY_KEY"):
        missing.headers()


def test_api_key_file_rotates(tmp_path: Path) -> None:
    path = tmp_path / "api-key"
    path.write_text("first-key\n")
    clock = Clock()
    cred = ApiKeyCredential(ApiKeyAuth(type="api_key", key_file=path), clock=clock)
    assert cred.headers()["api-key"] == "first-key"
    path.write_text("second-key-longer")
    clock.now += 2
    assert cred.headers()["x-api-key"] == "second-key-longer"
    path.write_text("")
    clock.now += 2
    assert not cred.status().usable


def test_world_readable_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    write_token(path, "visible-to-all")
    path.chmod(0o644)
    cred = TokenFileCredential(EntraAuth(type="entra", token_file=path, recheck_seconds=0))
    state = cred.status()
    assert not state.usable and state.reason is not None and "world-readable (mode 0644)" in state.reason
    path.chmod(0o640)
    assert cred.headers()["authorization"] == "Bearer visible-to-all"
    key = tmp_path / "api-key"
    key.write_text("k-123456")
    key.chmod(0o604)
    assert "world-readable" in (ApiKeyCredential(ApiKeyAuth(type="api_key", key_file=key)).status().reason or "")
