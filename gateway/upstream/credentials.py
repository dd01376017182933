"""Upstream credentials: the sidecar's token file, or a Foundry API key.

Files are watched by `stat` at most once per `recheck_seconds` and read only when their
identity (device, inode, size, mtime) changes, which also catches Kubernetes' symlink
swaps of mounted volumes. Both are tiny files on an in-memory volume, so the rare read
stays on the event loop rather than paying a thread hop on every request.

Nothing here ever puts a secret into a message, a repr or an exception.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from foundry_common import scrub
from foundry_common.timestamps import utc_text
from foundry_common.token_file import parse_token
from foundry_common.watched_file import WatchedFile, WorldReadable
from gateway.config import ApiKeyAuth, EntraAuth, UpstreamAuth


class CredentialUnavailable(Exception):
    """No usable credential right now; the message is safe to show and says what to check."""


@dataclass(frozen=True, slots=True)
class CredentialStatus:
    usable: bool
    reason: str | None
    expires_on: float | None  # unix seconds; None for API keys


class Credential(Protocol):
    def headers(self) -> Mapping[str, str]: ...

    def status(self) -> CredentialStatus: ...

    def invalidate(self) -> None: ...


class TokenFileCredential:
    """`Authorization: Bearer` from the JSON token file the token sidecar keeps fresh."""

    def __init__(
        self,
        auth: EntraAuth,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._file = WatchedFile(auth.token_file, auth.recheck_seconds, clock)
        self._wall = wall
        self._headers: Mapping[str, str] | None = None
        self._expires_on: float | None = None
        self._problem: str | None = f"token file {auth.token_file} has not been read yet"

    def __repr__(self) -> str:
        return f"TokenFileCredential(path={str(self._file.path)!r})"

    def _load(self, force: bool = False) -> None:
        path = self._file.path
        try:
            content = self._file.changed(force)
        except FileNotFoundError:
            self._set_problem(f"token file {path} does not exist; is the token sidecar running?")
            return
        except WorldReadable as exc:
            self._set_problem(f"token file {path} is {exc}; it must be neither (the sidecar writes 0640)")
            return
        except OSError as exc:
            self._set_problem(f"token file {path} cannot be read: {exc.strerror or type(exc).__name__}")
            return
        if content is None:
            return
        try:
            token = parse_token(content)
        except ValueError as exc:
            self._set_problem(f"token file {path} {exc}")
            self._file.invalidate_identity()
            return
        scrub.remember(token.access_token)
        self._headers = {"authorization": f"Bearer {token.access_token}"}
        self._expires_on = token.expires_on
        self._problem = None

    def _set_problem(self, problem: str) -> None:
        self._headers = None
        self._expires_on = None
        self._problem = problem

    def status(self) -> CredentialStatus:
        self._load()
        if self._problem is not None:
            return CredentialStatus(False, self._problem, None)
        assert self._expires_on is not None
        now = self._wall()
        if self._expires_on <= now:
            return CredentialStatus(
                False,
                f"token in {self._file.path} expired at {utc_text(self._expires_on)} "
                f"({now - self._expires_on:.0f} s ago); is the token sidecar refreshing it?",
                self._expires_on,
            )
        return CredentialStatus(True, None, self._expires_on)

    def headers(self) -> Mapping[str, str]:
        state = self.status()
        if not state.usable or self._headers is None:
            raise CredentialUnavailable(state.reason or "no token")
        return self._headers

    def invalidate(self) -> None:
        """Re-read the file now (after an upstream 401, say), whatever the recheck interval."""
        self._load(force=True)


class ApiKeyCredential:
    """A Foundry API key, sent as both `x-api-key` and `api-key` as Anthropic's Foundry client does."""

    def __init__(self, auth: ApiKeyAuth, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._env = auth.key_env
        self._file = WatchedFile(auth.key_file, 1.0, clock) if auth.key_file is not None else None
        self._headers: Mapping[str, str] | None = None
        self._problem: str | None = None
        if self._env is not None:
            key = os.environ.get(self._env, "").strip()
            if key:
                scrub.remember(key)
                self._headers = {"x-api-key": key, "api-key": key}
            else:
                self._problem = f"environment variable {self._env} (auth.key_env) is not set or empty"

    def __repr__(self) -> str:
        source = f"env={self._env!r}" if self._env else f"file={str(self._file.path) if self._file else None!r}"
        return f"ApiKeyCredential({source})"

    def _load(self, force: bool = False) -> None:
        if self._file is None:
            return
        try:
            content = self._file.changed(force)
        except WorldReadable as exc:
            self._headers = None
            self._problem = f"API key file {self._file.path} is {exc}; it must be neither world-readable nor -writable"
            return
        except OSError as exc:
            self._headers = None
            self._problem = f"API key file {self._file.path} cannot be read: {exc.strerror or type(exc).__name__}"
            return
        if content is None:
            return
        key = content.decode("utf-8", "replace").strip()
        if key:
            scrub.remember(key)
            self._headers = {"x-api-key": key, "api-key": key}
            self._problem = None
        else:
            self._headers = None
            self._problem = f"API key file {self._file.path} is empty"

    def status(self) -> CredentialStatus:
        self._load()
        return CredentialStatus(self._headers is not None, self._problem, None)

    def headers(self) -> Mapping[str, str]:
        self._load()
        if self._headers is None:
            raise CredentialUnavailable(self._problem or "no API key")
        return self._headers

    def invalidate(self) -> None:
        self._load(force=True)


def credential_for(auth: UpstreamAuth) -> Credential:
    if isinstance(auth, EntraAuth):
        return TokenFileCredential(auth)
    return ApiKeyCredential(auth)
