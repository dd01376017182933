"""The token sidecar with real azure-identity against the HTTPS Entra emulator, and the gateway using its tokens."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import orjson
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.harness import (
    ROOT,
    EntraEmulator,
    Process,
    emulator_control,
    eventually,
    metric,
    start_entra_emulator,
    start_foundry_emulator,
    start_gateway,
    start_sidecar,
)

SECRET = "entra-client-secret-5a1b9c"
SA_SUBJECT = "system:serviceaccount:ai:foundry-gateway"


class Setup:
    def __init__(self, work: Path) -> None:
        self.work = work
        client_ca = trustme.CA(key_type=trustme.KeyType.RSA)
        leaf = client_ca.issue_cert("foundry-gateway-client", key_type=trustme.KeyType.RSA)
        self.client_pem = work / "client-with-key.pem"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(self.client_pem))
        client_cert = work / "client-cert.pem"
        leaf.cert_chain_pems[0].write_to_path(str(client_cert))
        issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        issuer_pub = work / "cluster-issuer.pub.pem"
        issuer_pub.write_bytes(
            issuer_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        now = int(time.time())
        self.federated_file = work / "azure-identity-token"
        self.federated_file.write_text(
            jwt.encode(
                {
                    "iss": "https://oidc.cluster.local",
                    "sub": SA_SUBJECT,
                    "aud": "api://AzureADTokenExchange",
                    "iat": now,
                    "exp": now + 3600,
                },
                issuer_key,
                algorithm="RS256",
            )
        )
        self.entra: EntraEmulator = start_entra_emulator(
            work,
            clients={"app-secret": SECRET},
            cert_clients={"app-cert": client_cert},
            federated_clients={"app-wi": (issuer_pub, SA_SUBJECT)},
        )

    def env(self, client_id: str = "app-secret", **extra: str) -> dict[str, str]:
        env = {
            "AZURE_TENANT_ID": self.entra.tenant,
            "AZURE_CLIENT_ID": client_id,
            "AZURE_AUTHORITY_HOST": self.entra.authority,
            "SSL_CERT_FILE": str(self.entra.ca_file),
            "TOKEN_SIDECAR_LOG_FORMAT": "json",
        }
        if client_id == "app-secret":
            env["AZURE_CLIENT_SECRET"] = SECRET
        elif client_id == "app-cert":
            env["AZURE_CLIENT_CERTIFICATE_PATH"] = str(self.client_pem)
        elif client_id == "app-wi":
            env["AZURE_FEDERATED_TOKEN_FILE"] = str(self.federated_file)
        return {**env, **extra}

    def token(self) -> str:
        """An access token from the emulator, by client credentials, without the sidecar."""
        form = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": "app-secret", "client_secret": SECRET,
             "scope": "https://ai.azure.com/.default"}
        ).encode()  # fmt: skip
        url = f"{self.entra.authority}/{self.entra.tenant}/oauth2/v2.0/token"
        context = ssl.create_default_context(cafile=str(self.entra.ca_file))
        with urllib.request.urlopen(url, data=form, timeout=10, context=context) as resp:
            return str(orjson.loads(resp.read())["access_token"])

    def claims(self, token: str, audience: str = "https://ai.azure.com") -> dict[str, Any]:
        key = serialization.load_pem_public_key(self.entra.public_key.read_bytes())
        return dict(jwt.decode(token, key, algorithms=["RS256"], audience=audience))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    s = Setup(tmp_path_factory.mktemp("sidecar"))
    try:
        yield s
    finally:
        s.entra.process.stop()


@pytest.fixture(autouse=True)
def entra_defaults(setup: Setup) -> Iterator[None]:
    yield
    setup.entra.control(lifetime=3600, outage=None)


def run_once(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "token_sidecar", "--once", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def read_file(path: Path) -> dict[str, Any]:
    return dict(orjson.loads(path.read_bytes()))


@pytest.mark.parametrize("client_id", ["app-secret", "app-cert", "app-wi"])
def test_once_writes_a_token_for_each_credential_kind(setup: Setup, tmp_path: Path, client_id: str) -> None:
    out = tmp_path / "tokens" / "token.json"
    result = run_once(setup.env(client_id), "--output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    data = read_file(out)
    claims = setup.claims(data["access_token"])
    assert claims["tid"] == setup.entra.tenant and claims["appid"] == client_id
    # azure-identity dates expiry from its own clock when it sent the request: a second apart at most.
    assert abs(data["expires_on"] - claims["exp"]) <= 2 and data["token_type"] == "Bearer"


def test_cognitive_services_scope_and_custom_mode(setup: Setup, tmp_path: Path) -> None:
    out = tmp_path / "token.json"
    result = run_once(setup.env(), "--output", str(out), "--scope", "https://cognitiveservices.azure.com/.default",
                      "--mode", "0600")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert setup.claims(read_file(out)["access_token"], "https://cognitiveservices.azure.com")["aud"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"AZURE_CLIENT_SECRET": "not-the-secret"}, "AADSTS7000215"),
        ({"AZURE_CLIENT_ID": "unknown-app"}, "AADSTS700016"),
        ({"SSL_CERT_FILE": ""}, "SSL"),
    ],
)
def test_bad_credentials_fail_once_clearly(setup: Setup, tmp_path: Path, env: dict[str, str], fragment: str) -> None:
    out = tmp_path / "token.json"
    result = run_once(setup.env(**env), "--output", str(out))
    assert result.returncode != 0
    assert "token_sidecar: no token for 'default'" in result.stderr and fragment in result.stderr + result.stdout
    assert not out.exists()
    assert SECRET not in result.stdout + result.stderr


def test_a_hung_entra_is_a_failure_not_a_hang(setup: Setup, tmp_path: Path) -> None:
    setup.entra.control(outage="hang")
    started = time.monotonic()
    result = run_once(setup.env(), "--output", str(tmp_path / "t.json"), "--attempt-timeout", "1")
    assert result.returncode != 0 and "did not answer within the attempt timeout" in result.stderr
    assert time.monotonic() - started < 20


def test_refresh_outage_and_recovery(setup: Setup, tmp_path: Path) -> None:
    setup.entra.control(lifetime=3)
    out = tmp_path / "token.json"
    sidecar, health = start_sidecar(
        ["--output", str(out), "--ready-margin", "1", "--retry-initial", "0.2", "--retry-max", "0.5"],
        setup.env(),
        tmp_path,
    )
    try:
        eventually(lambda: httpx.get(health + "/readyz").status_code == 200, timeout=15, what="first token")
        first = read_file(out)["access_token"]
        second = eventually(lambda: (t := read_file(out)["access_token"]) != first and t, timeout=15, what="a refresh")
        assert setup.claims(second)["exp"] > setup.claims(first)["exp"] - 1

        setup.entra.control(outage="server_error")
        failures = 'token_sidecar_consecutive_failures{token="default"}'
        eventually(lambda: metric(health, failures) >= 2, timeout=15, what="outage failures")
        assert read_file(out)["access_token"] == second, "the last good token stays in place"

        def unready() -> httpx.Response | None:
            response = httpx.get(health + "/readyz")
            return response if response.status_code == 503 else None

        ready = eventually(unready, timeout=15, what="unready")
        assert ready is not None
        assert "temporarily_unavailable" in ready.json()["tokens"]["default"]["last_error"]

        setup.entra.control(outage=None)
        eventually(lambda: httpx.get(health + "/readyz").status_code == 200, timeout=15, what="recovery")
        assert metric(health, 'token_sidecar_consecutive_failures{token="default"}') == 0
        assert metric(health, 'token_sidecar_refresh_attempts_total{result="failure",token="default"}') >= 2
        assert metric(health, 'token_sidecar_refresh_attempts_total{result="success",token="default"}') >= 3
        assert (
            metric(health, 'token_sidecar_token_expiry_timestamp_seconds{token="default"}')
            == read_file(out)["expires_on"]
        )
        assert metric(health, 'token_sidecar_last_success_timestamp_seconds{token="default"}') > time.time() - 10
    finally:
        assert sidecar.stop() == 0, "SIGTERM ends the sidecar cleanly"
    assert out.exists(), "the token file stays after SIGTERM"
    log = sidecar.log()
    assert "token_refresh_failed" in log and "token_written" in log
    for secret in (SECRET, first, second, read_file(out)["access_token"]):
        assert secret not in log


def test_gateway_uses_the_sidecar_token_and_recovers_from_an_expired_one(setup: Setup, tmp_path: Path) -> None:
    foundry, foundry_url = start_foundry_emulator("--jwt-public-key", str(setup.entra.public_key), log_dir=tmp_path)
    token_file = tmp_path / "shared" / "token.json"
    sidecar, _ = start_sidecar(["--output", str(token_file)], setup.env(), tmp_path)
    config = {
        "upstreams": [{"name": "entra", "base_url": foundry_url,
                       "auth": {"type": "entra", "token_file": str(token_file), "recheck_seconds": 60}}],
        "routes": [{"model": "claude", "targets": [{"upstream": "entra", "deployment": "claude-dep"}]}],
    }  # fmt: skip
    procs: list[Process] = [sidecar, foundry]
    try:
        eventually(token_file.exists, timeout=15, what="the sidecar's first token")
        gateway, base, _ = start_gateway(config, log_dir=tmp_path)
        procs.append(gateway)
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
        ask = [{"role": "user", "content": "hi"}]
        assert client.chat.completions.create(model="claude", messages=ask).choices[0].message.content == "You said: hi"  # type: ignore[arg-type]
        sent = emulator_control(foundry_url, "requests")[-1]["headers"]["authorization"]
        assert sent == "Bearer " + read_file(token_file)["access_token"]

        # A token whose file says it is fresh but which Foundry finds expired (clock skew, say),
        # read by a gateway that starts while it is in place.
        sidecar.stop()
        setup.entra.control(lifetime=1)
        # Minted straight from Entra: the sidecar itself would rightly refuse to write an expired token.
        stale_token = setup.token()
        setup.entra.control(lifetime=3600)
        time.sleep(2.1)
        token_file.write_bytes(orjson.dumps({"access_token": stale_token, "expires_on": int(time.time()) + 3600}))
        gateway.stop()
        gateway, base, _ = start_gateway(config, log_dir=tmp_path / "second")
        procs.append(gateway)
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="claude", messages=ask)  # type: ignore[arg-type]
        assert "token has expired" in info.value.message

        # The sidecar comes back and writes a fresh token; the gateway's next 401 finds it and retries.
        sidecar, _ = start_sidecar(["--output", str(token_file)], setup.env(), tmp_path, name="token-sidecar-2")
        procs.append(sidecar)
        fresh = eventually(
            lambda: (t := read_file(token_file)["access_token"]) != stale_token and t, timeout=15, what="fresh token"
        )
        assert setup.claims(fresh)["exp"] > time.time() + 60
        reply = client.chat.completions.create(model="claude", messages=ask)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "You said: hi"
        assert '"auth_retried":true' in gateway.log()
        for secret in (SECRET, read_file(token_file)["access_token"], stale_token):
            assert secret not in gateway.log() and secret not in sidecar.log()
    finally:
        for p in procs:
            p.stop()
