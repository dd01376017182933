"""Inbound identity with API keys: who may call, which models, how fast; keys never shown."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jwt
import openai
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from devtools.harness import Process, start_foundry_emulator, start_gateway

KEYS = {"team-a": "sk-team-a-0f9e8d7c6b5a", "team-b": "sk-team-b-1a2b3c4d5e6f", "team-c": "sk-team-c-9z8y7x6w5v4u"}
HELLO: Any = [{"role": "user", "content": "hello"}]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


ISSUER = "https://oidc.cluster.test"


class ClusterIssuer:
    """The cluster's service-account token issuer: its signing keys, published as a JWKS file."""

    def __init__(self, jwks_file: Path) -> None:
        self.jwks_file = jwks_file
        self.rotate()

    def rotate(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:16]
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        tmp = self.jwks_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}))
        tmp.replace(self.jwks_file)

    def token(self, namespace: str = "agents", account: str = "runner", **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": ["foundry-gateway"], "sub": f"system:serviceaccount:{namespace}:{account}",
                  "iat": now, "nbf": now, "exp": now + 600, **overrides}  # fmt: skip
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> ClusterIssuer:
    return ClusterIssuer(tmp_path_factory.mktemp("issuer") / "jwks.json")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, issuer: ClusterIssuer) -> Iterator[tuple[Process, str]]:
    work = tmp_path_factory.mktemp("inbound")
    emulator, foundry = start_foundry_emulator("--api-key", "upstream-key", log_dir=work)
    config = {
        "upstreams": [{"name": "f", "base_url": foundry, "auth": {"type": "api_key", "key_env": "UP_KEY"}}],
        "routes": [
            {"model": "open-model", "targets": [{"upstream": "f", "deployment": "d"}]},
            {"model": "team-model", "targets": [{"upstream": "f", "deployment": "d"}]},
        ],
        "inbound": {
            "api_keys": [
                {"client": "team-a", "sha256": digest(KEYS["team-a"])},
                {"client": "team-b", "sha256": digest(KEYS["team-b"]), "routes": ["open-model"],
                 "requests_per_minute": 2},
                {"client": "team-c", "sha256": digest(KEYS["team-c"]), "tokens_per_minute": 10},
            ],
            "service_accounts": {
                "issuer": ISSUER,
                "jwks_file": str(issuer.jwks_file),
                "clients": [{"namespace": "agents", "service_account": "runner", "client": "agents-runner",
                             "routes": ["open-model"]}],
            },
        },
    }  # fmt: skip
    proc, base, _ = start_gateway(config, env={"UP_KEY": "upstream-key"}, log_dir=work)
    try:
        yield proc, base
    finally:
        proc.stop()
        emulator.stop()


def oai(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def test_both_sdks_authenticate_with_their_own_header(gateway: tuple[Process, str]) -> None:
    _, base = gateway
    assert oai(base, KEYS["team-a"]).chat.completions.create(model="team-model", messages=HELLO).choices
    claude = anthropic.Anthropic(base_url=base, api_key=KEYS["team-a"], max_retries=0)  # sends x-api-key
    assert claude.messages.create(model="team-model", max_tokens=20, messages=HELLO).content
    raw = httpx.post(base + "/v1/messages", headers={"api-key": KEYS["team-a"]},
                     json={"model": "team-model", "max_tokens": 5, "messages": HELLO})  # fmt: skip
    assert raw.status_code == 200


def test_missing_or_wrong_keys_are_401_in_each_dialect(gateway: tuple[Process, str]) -> None:
    proc, base = gateway
    with pytest.raises(openai.AuthenticationError, match="Invalid API key"):
        oai(base, "sk-wrong").chat.completions.create(model="open-model", messages=HELLO)
    missing = httpx.post(base + "/v1/messages", json={"model": "open-model", "max_tokens": 5, "messages": HELLO})
    assert missing.status_code == 401
    assert missing.json()["error"] == {
        "type": "authentication_error",
        "message": "Missing API key: send it as Authorization: Bearer <key>, x-api-key or api-key",
    }
    assert httpx.get(base + "/v1/models").status_code == 401
    assert httpx.get(proc.admin + "/healthz").status_code == 200, "probes need no key"
    assert httpx.get(base + "/healthz").status_code == 401, "the API port serves the API only"


def test_a_client_sees_and_uses_only_its_routes(gateway: tuple[Process, str]) -> None:
    _, base = gateway
    client = oai(base, KEYS["team-b"])
    assert [m.id for m in client.models.list()] == ["open-model"]
    with pytest.raises(openai.PermissionDeniedError, match="'team-b' may not use model 'team-model'"):
        client.chat.completions.create(model="team-model", messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("team-model")


def test_request_rate_limit(gateway: tuple[Process, str]) -> None:
    _, base = gateway
    client = oai(base, KEYS["team-b"])
    results = []
    for _ in range(4):
        try:
            client.chat.completions.create(model="open-model", messages=HELLO)
            results.append(200)
        except openai.RateLimitError as exc:
            results.append(429)
            assert int(exc.response.headers["retry-after"]) >= 1
    assert results.count(429) >= 2, "two a minute, whatever the earlier tests used"


def test_token_rate_limit(gateway: tuple[Process, str]) -> None:
    _, base = gateway
    client = oai(base, KEYS["team-c"])
    client.chat.completions.create(model="open-model", messages=[{"role": "user", "content": "x " * 50}])
    with pytest.raises(openai.RateLimitError, match="over its rate limit"):
        client.chat.completions.create(model="open-model", messages=HELLO)


def test_client_names_in_logs_and_metrics_keys_nowhere(gateway: tuple[Process, str], tmp_path: Path) -> None:
    proc, base = gateway
    oai(base, KEYS["team-a"]).chat.completions.create(model="open-model", messages=HELLO)
    metrics = httpx.get(proc.admin + "/metrics").text
    assert 'foundry_gateway_client_requests_total{client="team-a",route="open-model",status="200"}' in metrics
    assert 'foundry_gateway_inbound_rejections_total{reason="unauthenticated"}' in metrics
    log = proc.log()
    assert '"client":"team-a"' in log
    for key in KEYS.values():
        assert key not in log and key not in metrics and digest(key) not in log


def test_service_account_tokens_are_verified_offline(gateway: tuple[Process, str], issuer: ClusterIssuer) -> None:
    proc, base = gateway
    token = issuer.token()
    reply = oai(base, token).chat.completions.create(model="open-model", messages=HELLO)
    assert reply.choices[0].finish_reason == "stop"
    assert '"client":"agents-runner"' in proc.log()
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'team-model'"):
        oai(base, token).chat.completions.create(model="team-model", messages=HELLO)
    with pytest.raises(openai.PermissionDeniedError, match="agents/intruder is not a client"):
        oai(base, issuer.token(account="intruder")).chat.completions.create(model="open-model", messages=HELLO)
    bad = {
        "has expired": issuer.token(exp=int(time.time()) - 5),
        "audience must be 'foundry-gateway'": issuer.token(aud="kubernetes"),
        "from another issuer": issuer.token(iss="https://elsewhere"),
    }
    for fragment, forged in bad.items():
        with pytest.raises(openai.AuthenticationError, match=fragment):
            oai(base, forged).chat.completions.create(model="open-model", messages=HELLO)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unsigned = jwt.encode(jwt.decode(token, options={"verify_signature": False}), other, algorithm="RS256",
                          headers={"kid": issuer.kid})  # fmt: skip
    with pytest.raises(openai.AuthenticationError, match="does not verify"):
        oai(base, unsigned).chat.completions.create(model="open-model", messages=HELLO)
    assert token not in proc.log()


def test_issuer_key_rotation_is_picked_up(gateway: tuple[Process, str], issuer: ClusterIssuer) -> None:
    _, base = gateway
    issuer.rotate()
    token = issuer.token()
    deadline = time.monotonic() + 10
    while True:
        try:
            oai(base, token).chat.completions.create(model="open-model", messages=HELLO)
            break
        except openai.AuthenticationError:
            assert time.monotonic() < deadline, "the new JWKS was not read"
            time.sleep(0.5)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_token_whose_header_picks_another_algorithm_is_a_401(
    gateway: tuple[Process, str], issuer: ClusterIssuer
) -> None:
    """Algorithm confusion: whatever the header claims, the issuer's RSA key verifies RS256 only."""
    proc, base = gateway
    claims = jwt.decode(issuer.token(), options={"verify_signature": False})
    forged = {
        "ES256 signed by another key": jwt.encode(
            claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": issuer.kid}
        ),
        "none": jwt.encode(claims, "", algorithm="none", headers={"kid": issuer.kid}),
    }
    # HS256 keyed with the issuer's public key: the classic confusion of a public key for a shared secret.
    public_pem = issuer.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input = _b64(orjson.dumps({"alg": "HS256", "kid": issuer.kid})) + "." + _b64(orjson.dumps(claims))
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged["HS256 keyed with the public key"] = signing_input + "." + _b64(mac)
    for name, token in forged.items():
        response = httpx.post(
            base + "/v1/messages",
            headers={"authorization": f"Bearer {token}"},
            json={"model": "open-model", "max_tokens": 5, "messages": HELLO},
        )
        assert response.status_code == 401, name
        assert response.json()["error"]["type"] == "authentication_error", name
    assert "Traceback" not in proc.log()


def test_a_key_that_is_not_utf8_is_a_401(gateway: tuple[Process, str]) -> None:
    _, base = gateway
    for header in ("x-api-key", "authorization"):
        value = b"\xff\xfe\xfd-not-utf8" if header == "x-api-key" else b"Bearer \xff\xfe\xfd"
        response = httpx.post(
            base + "/v1/chat/completions",
            headers={header.encode(): value},
            json={"model": "open-model", "messages": HELLO},
        )
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == "authentication_error"


def raw_exchange(base: str, head: bytes, body: bytes = b"", *, send_body_after_100: bool = False) -> bytes:
    """One request on a raw socket; everything the gateway wrote back until it is done."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)
        received = b""
        if send_body_after_100:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    return received
                received += chunk
            if received.startswith(b"HTTP/1.1 100 Continue"):
                sock.sendall(body)
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if b'"error"' in received or b'"choices"' in received:
                break
        return received


def test_expect_100_continue_only_after_authentication(gateway: tuple[Process, str]) -> None:
    _, base = gateway
    body = orjson.dumps({"model": "open-model", "messages": HELLO})

    def head(key: str) -> bytes:
        return (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nExpect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()

    refused = raw_exchange(base, head("sk-wrong"), body, send_body_after_100=True)
    assert refused.startswith(b"HTTP/1.1 401"), refused[:80]
    assert b"100 Continue" not in refused
    accepted = raw_exchange(base, head(KEYS["team-a"]), body, send_body_after_100=True)
    assert accepted.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), accepted[:80]


def test_the_connectivity_probe_needs_no_key(gateway: tuple[Process, str]) -> None:
    _, base = gateway
    assert httpx.head(base + "/").status_code == 200
    assert httpx.get(base + "/v1/models").status_code == 401, "everything else still does"
