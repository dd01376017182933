"""A hostile caller: bytes that are not UTF-8, deep nesting, huge echoes, bad encodings, idle and
dripping connections, a flood of them. Each gets a clear error in its dialect (or a closed
connection), every request keeps its access-log line, and other callers are not starved.
"""

from __future__ import annotations

import gzip
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from devtools.harness import Process, access_lines, metric, start_gateway
from tests.integration.conftest import API_KEY, Stack, api_key_upstream, error_of, route

MODEL = "claude-sonnet-4-5"
HELLO: list[Any] = [{"role": "user", "content": "Hello caller"}]
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
DIALECTS = list(PATHS)


def body_for(dialect: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": HELLO, **extra}
    if dialect == "anthropic":
        body.setdefault("max_tokens", 20)
    return body


def raw_request(base: str, request: bytes) -> bytes:
    """One request on a raw socket; the response once its head and its content-length of body are in."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            head, sep, body = received.rpartition(b"\r\n\r\n")
            lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
            if sep and lengths and len(body) >= int(lengths[-1].split(b":")[1]):
                break
        return received


def test_a_request_id_that_is_not_utf8_still_gets_an_answer_and_a_log_line(stack: Stack) -> None:
    marker = "caller-marker-5e1d"
    response = raw_request(
        stack.base,
        f"GET /v1/models/{marker} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n".encode()
        + b"X-Request-Id: \xff\xfe\xc3(\r\n\r\n",
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert b"application/json" in head and marker.encode() in body
    request_id = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"x-request-id"))
    assert request_id.split(b": ")[1].isascii(), "a fresh id replaces one that is not printable ASCII"
    assert any(marker in line.get("path", "") for line in access_lines(stack.gateway))


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("depth", [300, 1000, 5000])
def test_deep_nesting_is_a_400_naming_the_limit(stack: Stack, dialect: str, depth: int) -> None:
    nested = '{"a":' * depth + "1" + "}" * depth
    if dialect == "openai":
        tool = {"type": "function", "function": {"name": "f", "parameters": "SCHEMA"}}
    else:
        tool = {"name": "f", "input_schema": "SCHEMA"}
    raw = orjson.dumps(body_for(dialect, tools=[tool])).replace(b'"SCHEMA"', nested.encode(), 1)
    response = httpx.post(stack.base + PATHS[dialect], content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "more than 254 levels deep" in error_of(response, dialect)["message"]
    assert "Traceback" not in stack.gateway.log()


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", ["m" * 200_000, "claude-\x1b[31m", "claude-é"])
def test_a_model_name_that_is_no_name_is_refused_at_the_door(stack: Stack, dialect: str, name: str) -> None:
    """Bounded before the route lookup, which remembers the names a pattern matched."""
    response = httpx.post(stack.base + PATHS[dialect], json={**body_for(dialect), "model": name})
    assert response.status_code == 400
    error = error_of(response, dialect)
    assert "at most 256 printable ASCII characters" in error["message"] and len(error["message"]) < 1000
    assert max(len(line) for line in stack.gateway.log().splitlines()) < 10_000


def test_a_responses_request_counts_its_input_items_against_max_messages(stack: Stack) -> None:
    items: list[Any] = [{}] * 10_001  # the count is checked before what each item is
    response = httpx.post(stack.base + "/v1/responses", json={"model": "claude-sonnet-4-5", "input": items})
    assert response.status_code == 400
    assert "'input' holds 10001 items; this gateway accepts 10000" in response.json()["error"]["message"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compressed_request_bodies(stack: Stack, dialect: str) -> None:
    raw = orjson.dumps(body_for(dialect))
    url = stack.base + PATHS[dialect]
    for encoding, data in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        ok = httpx.post(url, content=data, headers={"content-type": "application/json", "content-encoding": encoding})
        assert ok.status_code == 200, (encoding, ok.text)
    broken = httpx.post(url, content=b"\x1f\x8b not gzip", headers={"content-encoding": "gzip"})
    assert broken.status_code == 400 and "not valid gzip" in error_of(broken, dialect)["message"]
    unknown = httpx.post(url, content=raw, headers={"content-encoding": "br"})
    assert unknown.status_code == 415
    assert "Content-Encoding 'br' is not supported" in error_of(unknown, dialect)["message"]
    # 1 MB of padding compresses to about a kilobyte; inflated, it is over the stack's 256 KiB.
    bomb = gzip.compress(orjson.dumps(body_for(dialect, metadata={"user_id": "x" * 1_000_000})))
    assert len(bomb) < 8192
    too_large = httpx.post(url, content=bomb, headers={"content-encoding": "gzip"})
    assert too_large.status_code == 413
    assert "Traceback" not in stack.gateway.log()


def test_a_declared_length_over_the_limit_is_refused_before_the_body(stack: Stack) -> None:
    response = raw_request(
        stack.base,
        b"POST /v1/messages HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\nContent-Length: 99999999\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 413"), response[:60]
    assert b"100 Continue" not in response
    assert b'"request_too_large"' in response


def test_health_and_metrics_are_not_on_the_api_port(stack: Stack) -> None:
    for path in ("/metrics", "/readyz", "/healthz"):
        response = httpx.get(stack.base + path)
        assert response.status_code == 404
        assert "No endpoint" in response.json()["error"]["message"]
    assert httpx.get(stack.gateway.admin + "/metrics").status_code == 200


@pytest.fixture(scope="module")
def guarded(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, str]]:
    config = {
        "server": {"max_connections": 20, "header_timeout_seconds": 0.5, "idle_timeout_seconds": 1.5},
        "upstreams": [api_key_upstream("foundry", stack.foundry)],
        "routes": [route(MODEL, "foundry", "d")],
    }
    proc, base, _ = start_gateway(config, env={"FOUNDRY_TEST_KEY": API_KEY}, log_dir=tmp_path_factory.mktemp("g"))
    try:
        yield proc, base
    finally:
        proc.stop()


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the gateway closes the connection within `seconds` (reading whatever it sends)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def closed_total(proc: Process, reason: str) -> float:
    return metric(proc.admin, f'foundry_gateway_connections_closed_total{{reason="{reason}"}}')


def test_a_connection_that_sends_nothing_or_drips_its_head_is_closed(guarded: tuple[Process, str]) -> None:
    proc, base = guarded
    before = closed_total(proc, "header_timeout")
    silent = connect(base)
    dripping = connect(base)
    for byte in b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n":
        try:
            dripping.sendall(bytes([byte]))
        except OSError:
            break
        time.sleep(0.05)
    assert closed_within(dripping, 2.0)
    assert closed_within(silent, 2.0)
    assert closed_total(proc, "header_timeout") == before + 2
    # A prompt caller on the same gateway is served as ever.
    assert httpx.get(base + "/v1/models").status_code == 200


def test_an_idle_keep_alive_connection_is_closed(guarded: tuple[Process, str]) -> None:
    _, base = guarded
    sock = connect(base)
    sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert not closed_within(sock, 0.8), "kept alive for a while"
    assert closed_within(sock, 2.0), "then closed once idle past idle_timeout_seconds"


def test_connections_over_the_limit_are_refused_and_counted(guarded: tuple[Process, str]) -> None:
    proc, base = guarded
    before = closed_total(proc, "limit")
    held = []
    try:
        # Each one sends a whole head it then never follows with a body, so it stays open.
        for _ in range(20):
            sock = connect(base)
            sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n")
            held.append(sock)
        time.sleep(0.2)
        refused = connect(base)
        answer = refused.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:40]
        assert b"limit of open connections" in answer
        assert closed_total(proc, "limit") == before + 1
        assert "connection_limit_reached" in proc.log()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(base + "/v1/models").status_code == 200, "served again once connections close"


def test_world_writable_credential_files_are_refused(stack: Stack, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY)
    key_file.chmod(0o602)
    config = {
        "upstreams": [{"name": "f", "base_url": stack.foundry, "auth": {"type": "api_key", "key_file": str(key_file)}}],
        "routes": [route("m", "f", "d")],
    }
    proc, base, _ = start_gateway(config, log_dir=tmp_path)
    try:
        response = httpx.post(base + "/v1/chat/completions", json={"model": "m", "messages": HELLO})
        assert response.status_code == 503
        assert "world-writable (mode 0602)" in response.json()["error"]["message"]
        key_file.chmod(0o600)
        deadline = time.monotonic() + 5
        while httpx.post(base + "/v1/chat/completions", json={"model": "m", "messages": HELLO}).status_code != 200:
            assert time.monotonic() < deadline, "a fixed mode is picked up"
            time.sleep(0.2)
    finally:
        proc.stop()
