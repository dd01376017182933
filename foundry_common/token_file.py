"""The token file's format, written once: the sidecar writes it, the gateway reads it.

A JSON object: `access_token` (the bearer token), `expires_on` (unix seconds), `token_type`, and
`refresh_on` when azure-identity said when to refresh. How the file is written (atomically) is
the sidecar's (token_sidecar/sink.py); when it is re-read, the gateway's.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    expires_on: float
    token_type: str = "Bearer"
    refresh_on: float | None = None

    def __repr__(self) -> str:  # the token itself never reaches a log line or a traceback
        return f"Token(expires_on={self.expires_on}, token_type={self.token_type!r})"

    def payload(self) -> bytes:
        body: dict[str, object] = {
            "access_token": self.access_token,
            "expires_on": int(self.expires_on),
            "token_type": self.token_type,
        }
        if self.refresh_on is not None:
            body["refresh_on"] = int(self.refresh_on)
        return orjson.dumps(body)


def parse_token(content: bytes) -> Token:
    """The token a file holds; ValueError saying what is wrong with it otherwise."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise ValueError("is not valid JSON") from None
    token = data.get("access_token") if isinstance(data, dict) else None
    expires_on = data.get("expires_on") if isinstance(data, dict) else None
    if (
        not isinstance(token, str)
        or not token
        or not isinstance(expires_on, int | float)
        or isinstance(expires_on, bool)
    ):
        raise ValueError("lacks access_token or a numeric expires_on")
    token_type = data.get("token_type")
    return Token(token, float(expires_on), token_type if isinstance(token_type, str) else "Bearer")
