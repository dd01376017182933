"""Just enough of a kubelet to run a rendered pod's containers as local processes.

Volumes become temp directories (emptyDir), files written from the rendered ConfigMaps and
from the Secrets a test provides (configMap, secret, projected). Containers run their
image's entrypoint with the rendered args and env; absolute mount paths are mapped onto
the temp directories wherever they appear (args, env values, ConfigMap contents), which is
the one liberty taken: processes here cannot mount at /etc or /var/run.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

from devtools.harness import ROOT, Process


def _entrypoint(dockerfile: str) -> list[str]:
    """The Dockerfile's ENTRYPOINT, with the image's venv python replaced by this one (the Process default)."""
    line = next(ln for ln in (ROOT / dockerfile).read_text().splitlines() if ln.startswith("ENTRYPOINT "))
    command: list[str] = json.loads(line.removeprefix("ENTRYPOINT "))
    assert command[0] == "/opt/venv/bin/python", command
    return command[1:]


# What each container's image runs: read from the Dockerfiles, so the chart and the images agree.
IMAGE_ENTRYPOINTS = {"gateway": _entrypoint("Dockerfile.gateway"), "token-sidecar": _entrypoint("Dockerfile.sidecar")}


class Pod:
    def __init__(
        self, deployment: dict[str, Any], objects: list[dict[str, Any]], secrets: dict[str, dict[str, str]], root: Path
    ) -> None:
        self.spec = deployment["spec"]["template"]["spec"]
        self.root = root
        self.secrets = secrets
        self.config_maps = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
        self._config_files: dict[str, dict[str, str]] = {}  # volume -> file -> rendered text, unmapped
        self.volumes = {v["name"]: self._volume(v) for v in self.spec.get("volumes", [])}
        self.processes: list[Process] = []

    def _volume(self, volume: dict[str, Any]) -> Path:
        path = self.root / "volumes" / volume["name"]
        path.mkdir(parents=True)
        if "configMap" in volume:
            # Written when a container that mounts them starts, with that container's paths mapped.
            self._config_files[volume["name"]] = self.config_maps[volume["configMap"]["name"]]
        elif "secret" in volume:
            for key, value in self.secrets[volume["secret"]["secretName"]].items():
                (path / key).write_text(value)
        elif "projected" in volume:
            for source in volume["projected"]["sources"]:
                data = self.secrets[source["secret"]["name"]]
                for item in source["secret"]["items"]:
                    (path / item["path"]).write_text(data[item["key"]])
        return path

    def containers(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.spec.get("initContainers", []) + self.spec["containers"]}

    def _mapper(self, container: dict[str, Any]) -> Any:
        mounts = {m["mountPath"]: str(self.volumes[m["name"]]) for m in container.get("volumeMounts", [])}
        if not mounts:
            return lambda text: text
        # One pass, longest mount first, and only where a path starts: a mapped path is never mapped again.
        pattern = re.compile(
            r"(?<![\w./-])("
            + "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
            + r")(?=/|$|[^\w.-])"
        )
        return lambda text: pattern.sub(lambda m: mounts[m.group(1)], text)

    def _env(self, container: dict[str, Any], mapped: Any) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = mapped(str(item["value"]))
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.secrets[ref["name"]][ref["key"]]
        return env

    def start(self, name: str) -> Process:
        container = self.containers()[name]
        mapped = self._mapper(container)
        for mount in container.get("volumeMounts", []):
            for key, text in self._config_files.get(mount["name"], {}).items():
                (self.volumes[mount["name"]] / key).write_text(mapped(text))
        args = [mapped(a) for a in container.get("args", [])]
        command = container.get("command") or IMAGE_ENTRYPOINTS[name]
        process = Process(name, [*command, *args], env=self._env(container, mapped), log_dir=self.root)
        self.processes.append(process)
        return process

    def port(self, container_name: str, port: int | str) -> int:
        if isinstance(port, int):
            return port
        container = self.containers()[container_name]
        return int(next(p["containerPort"] for p in container["ports"] if p["name"] == port))

    def probe(self, container_name: str, kind: str) -> int:
        """One httpGet probe, as the kubelet sends it; the HTTP status (0 when nothing answers)."""
        probe = self.containers()[container_name][kind]["httpGet"]
        url = f"http://127.0.0.1:{self.port(container_name, probe['port'])}{probe['path']}"
        try:
            with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds", 1)) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def wait_probe(self, container_name: str, kind: str, timeout: float = 30.0) -> None:
        spec = self.containers()[container_name][kind]
        period = min(spec.get("periodSeconds", 10), 1)
        deadline = time.monotonic() + timeout
        while self.probe(container_name, kind) != 200:
            process = next(p for p in self.processes if p.name == container_name)
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{container_name} {kind} never passed:\n{process.log()}")
            time.sleep(period / 5)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
