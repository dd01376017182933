"""Starting the real processes (emulators, gateway) for tests and for `make demo`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Process:
    """A child process whose output goes to a log file that tests can read afterwards."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str] | None = None, log_dir: Path | None = None
    ) -> None:
        self.name = name
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix="fgw-"))
        self.log_path = log_dir / f"{name}.log"
        self._log: TextIO = self.log_path.open("w")
        self.popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
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
    port = free_port()
    config = {**config, "server": {**config.get("server", {}), "host": "127.0.0.1", "port": port}}
    path = log_dir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = Process("gateway", ["-m", "gateway", "--config", str(path)], env=env, log_dir=log_dir)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc=proc)
    return proc, base, path


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
