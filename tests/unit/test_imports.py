"""What the gateway loads at start-up: PyJWT (9 MB resident) only when service accounts need it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

PROBE = """
import sys
from gateway.app import create_app
from gateway.config import GatewayConfig
create_app(GatewayConfig.model_validate_json(sys.argv[1]))
print("jwt" in sys.modules)
"""
UPSTREAM = {"name": "u", "base_url": "http://127.0.0.1:1/anthropic", "auth": {"type": "api_key", "key_env": "K"}}
BASE: dict[str, Any] = {
    "upstreams": [UPSTREAM],
    "routes": [{"model": "m", "targets": [{"upstream": "u", "deployment": "d"}]}],
}
SERVICE_ACCOUNTS = {
    "issuer": "https://kubernetes.default.svc",
    "jwks_file": "/nonexistent/jwks.json",
    "clients": [{"namespace": "n", "service_account": "s", "client": "c"}],
}


def jwt_loaded(config: dict[str, Any]) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(config)], capture_output=True, text=True, check=True, env={"K": "key"}
    ).stdout
    return out.strip().splitlines()[-1] == "True"


def test_pyjwt_is_loaded_only_with_service_accounts() -> None:
    assert not jwt_loaded(BASE)
    assert jwt_loaded({**BASE, "inbound": {"service_accounts": SERVICE_ACCOUNTS}})
