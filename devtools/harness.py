"""Starting the real processes (emulators, gateway) for tests and for `make demo`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import orjson
import trustme
import yaml

from foundry_common.token_file import Token

ROOT = Path(__file__).resolve().parent.parent


def replace_file(path: Path, data: bytes) -> None:
    """Write `path` in one rename, as the sidecar writes its token and Kubernetes swaps a mounted file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_token(path: Path, token: str, expires_in: float = 3600) -> None:
    """A token file as the sidecar writes it, expiring `expires_in` seconds from now."""
    replace_file(path, Token(token, time.time() + expires_in).payload())


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory now (VmHWM: at its peak so far), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def metric(admin: str, sample: str) -> float:
    """One sample's value from a gateway's admin /metrics (0 when absent), e.g.
    'foundry_gateway_requests_total{dialect="openai",route="m",status="200"}'."""
    with urllib.request.urlopen(admin + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def access_lines(proc: Process) -> list[dict[str, Any]]:
    """A gateway's access-log lines so far, parsed."""
    return [orjson.loads(line) for line in proc.log().splitlines() if '"event":"request"' in line]


def child_pids(pid: int) -> list[int]:
    """A process's children: a gateway's span export process, with tracing on."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Process:
    """A child process whose output goes to a log file that tests can read afterwards."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        executable: list[str] | None = None,
    ) -> None:
        """Runs `python ARGS` (the project's modules), or `executable` for another program."""
        self.name = name
        self.admin = ""  # a gateway's admin listener (/healthz, /readyz, /metrics), once started
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix="fgw-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log: TextIO = self.log_path.open("w")
        self.popen = subprocess.Popen(
            executable or [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait_for_line(self, needle: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if needle in line:
                    return line
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise TimeoutError(f"{self.name} did not print {needle!r} within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def start_foundry_emulator(*args: str, log_dir: Path | None = None) -> tuple[Process, str]:
    """Returns the process and its Foundry base URL (…/anthropic)."""
    proc = Process("foundry-emulator", ["-m", "tests.emulators.foundry", "--port", "0", *args], log_dir=log_dir)
    port = orjson.loads(proc.wait_for_line('"listening"'))["port"]
    return proc, f"http://127.0.0.1:{port}/anthropic"


T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "it") -> T:
    """`check`'s first truthy answer, polled until `timeout`; an exception counts as not yet.
    Instead of a sleep that bets on how long something takes."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # not yet: polled again
            last = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s (last error: {last!r})")


def wait_http(url: str, timeout: float = 15.0, proc: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if proc is not None and proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log()}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_gateway(
    config: dict[str, Any], env: dict[str, str] | None = None, log_dir: Path | None = None
) -> tuple[Process, str, Path]:
    """Write the config, start `python -m gateway`, wait until it answers.

    Returns the process, its base URL and the config file's path.
    """
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="fgw-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    port, admin_port = free_port(), free_port()
    # No drain delay unless a test asks: there are no endpoints to propagate here, and every stop would wait.
    server = {"drain_delay_seconds": 0, **config.get("server", {})}
    server |= {"host": "127.0.0.1", "port": port, "admin_host": "127.0.0.1", "admin_port": admin_port}
    config = {**config, "server": server}
    path = log_dir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = Process("gateway", ["-m", "gateway", "--config", str(path)], env=env, log_dir=log_dir)
    proc.admin = f"http://127.0.0.1:{admin_port}"
    wait_http(proc.admin + "/healthz", proc=proc)
    return proc, f"http://127.0.0.1:{port}", path


def emulator_control(base_url: str, path: str, payload: Any = None) -> Any:
    """Call the emulator's /_emulator API (base_url is the …/anthropic URL the gateway uses)."""
    root = base_url.removesuffix("/anthropic")
    data = None if payload is None else orjson.dumps(payload)
    req = urllib.request.Request(root + "/_emulator/" + path, data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return orjson.loads(resp.read())


@contextlib.contextmanager
def stopping(*procs: Process) -> Any:
    try:
        yield
    finally:
        for p in procs:
            p.stop()


@dataclass
class EntraEmulator:
    process: Process
    authority: str  # https://127.0.0.1:PORT, what AZURE_AUTHORITY_HOST takes
    ca_file: Path  # trusts the emulator's TLS certificate
    public_key: Path  # verifies the access tokens it issues
    tenant: str

    def control(self, **body: Any) -> dict[str, Any]:
        return _https_json(self.authority + "/_emulator/control", self.ca_file, body)

    def stats(self) -> dict[str, Any]:
        return _https_json(self.authority + "/_emulator/stats", self.ca_file, None)


def _https_json(url: str, ca_file: Path, body: Any) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(ca_file))
    data = None if body is None else orjson.dumps(body)
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(req, timeout=5, context=context) as resp:
        result: dict[str, Any] = orjson.loads(resp.read())
        return result


def start_entra_emulator(
    work: Path,
    *,
    tenant: str = "00000000-0000-0000-0000-0000000000aa",
    clients: dict[str, str] | None = None,
    cert_clients: dict[str, Path] | None = None,
    federated_clients: dict[str, tuple[Path, str]] | None = None,
    lifetime: int = 3600,
) -> EntraEmulator:
    """HTTPS with a certificate from a throwaway CA (trustme); returns what clients need to trust and verify it."""
    ca = trustme.CA()
    ca_file = work / "entra-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = work / "entra-cert.pem", work / "entra-key.pem"
    leaf.private_key_pem.write_to_path(str(key))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    public_key = work / "entra-signing.pub.pem"
    args = ["-m", "tests.emulators.entra", "--cert", str(cert), "--key", str(key), "--tenant", tenant]
    args += ["--lifetime", str(lifetime), "--public-key-out", str(public_key)]
    for client_id, secret in (clients or {}).items():
        args += ["--client", f"{client_id}:{secret}"]
    for client_id, pem in (cert_clients or {}).items():
        args += ["--cert-client", f"{client_id}:{pem}"]
    for client_id, (issuer_key, subject) in (federated_clients or {}).items():
        args += ["--federated-client", f"{client_id}:{issuer_key}:{subject}"]
    proc = Process("entra-emulator", args, log_dir=work)
    port = orjson.loads(proc.wait_for_line('"listening"'))["port"]
    return EntraEmulator(proc, f"https://127.0.0.1:{port}", ca_file, public_key, tenant)


def start_sidecar(
    args: list[str], env: dict[str, str], log_dir: Path, *, name: str = "token-sidecar"
) -> tuple[Process, str]:
    """Starts `python -m token_sidecar` with a free health port; returns it and its health base URL."""
    port = free_port()
    proc = Process(name, ["-m", "token_sidecar", "--health-port", str(port), "--health-host", "127.0.0.1", *args],
                   env=env, log_dir=log_dir)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc=proc)
    return proc, base


def start_redis(log_dir: Path | None = None, port: int | None = None, *args: str) -> tuple[Process, int]:
    """Debian's redis-server on loopback, nothing persisted; `make tools` installs it."""
    port = port or free_port()
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed: make tools installs Debian's redis-server"
    proc = Process(
        f"redis-{port}",
        [],
        log_dir=log_dir,
        executable=[server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args],
    )
    proc.wait_for_line("Ready to accept connections")
    return proc, port
