"""The images from the real Dockerfiles, run with `buildah run` against the emulators."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from devtools.harness import Process, free_port, start_entra_emulator, start_foundry_emulator, wait_http
from tests.images.conftest import buildah
from tests.otlp_receiver import SERVER, Receiver

SECRET = "image-test-client-secret-77d1"

pytestmark = pytest.mark.timeout(1800)  # building both images is most of it

CHECK_TOOLS = (
    "import os, shutil; print([t for t in ('gcc', 'cc', 'c++', '/opt/venv/bin/pip', '/root/.cache/pip')"
    " if shutil.which(t) or os.path.exists(t)])"
)


# Each image installs its own extra: (a package only it needs, a package only the other needs).
OWN_PACKAGES = {"gateway": ("uvloop", "azure"), "token_sidecar": ("azure", "uvloop")}
CHECK_PACKAGES = (
    "import importlib.util; print(','.join(m for m in ('uvloop', 'azure', 'msal', 'opentelemetry') "
    "if importlib.util.find_spec(m)))"
)


def config_of(image: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image).stdout)
    return dict(data["OCIv1"]["config"])


class Container:
    """`buildah run` of the image's ENTRYPOINT and CMD, as its configured user, on the host network."""

    def __init__(self, image: str, name: str, work: Path, env: dict[str, str], volumes: list[str]) -> None:
        self.ctr = buildah("from", "--name", f"{name}-{os.getpid()}-{time.monotonic_ns()}", image).stdout.strip()
        self.root = Path(buildah("mount", self.ctr).stdout.strip())
        config = config_of(image)
        self.user = config["User"]
        self.before = self.snapshot()
        command = [*config["Entrypoint"], *(config.get("Cmd") or [])]
        args = ["run", "--isolation", "chroot", "--network", "host", "--user", self.user]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        for volume in volumes:
            args += ["-v", volume]
        executable = ["buildah", "--storage-driver", "vfs", *args, self.ctr, "--", *command]
        self.process = Process(name, [], log_dir=work, executable=executable)

    def snapshot(self) -> dict[str, float]:
        """Every file of the root filesystem with its mtime, to prove the process writes none."""
        files: dict[str, float] = {}
        for path in self.root.rglob("*"):
            rel = str(path.relative_to(self.root))
            if rel.split("/")[0] in ("proc", "dev", "sys", "run", "tmp", "etc", "var") or not path.is_file():
                continue
            files[rel] = path.stat().st_mtime
        return files

    def stop(self) -> None:
        self.process.stop()
        buildah("rm", self.ctr, check=False)


def test_images_run_as_non_root_and_serve_a_request(images: dict[str, str], tmp_path: Path) -> None:
    for image in images.values():
        config = config_of(image)
        assert config["User"] == "10001:10001", "numeric non-root, as the chart's securityContext"
        assert config["Entrypoint"][0] == "/opt/venv/bin/python"
        labels = config["Labels"]
        assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
        assert labels["org.opencontainers.image.version"] and labels["org.opencontainers.image.source"]
        probe = buildah("from", image).stdout.strip()
        try:
            python = ["run", "--user", config["User"], probe, "--", "/opt/venv/bin/python", "-c"]
            assert buildah(*python, "import os; print(os.getuid(), os.getgid())").stdout.split() == ["10001", "10001"]
            found = buildah(*python, CHECK_TOOLS).stdout.strip()
            assert found == "[]", "no compiler, and no pip or pip cache in the application's venv"
            held = buildah(*python, CHECK_PACKAGES).stdout.strip().split(",")
            own, other = OWN_PACKAGES[config["Entrypoint"][-1]]
            assert own in held and other not in held, f"{image} holds {held}: its own dependencies only"
            assert "opentelemetry" in held, f"{image} cannot trace: {held}"  # both trace (OTEL_TRACES_EXPORTER)
        finally:
            buildah("rm", probe, check=False)

    entra = start_entra_emulator(tmp_path, clients={"image-app": SECRET})
    foundry, foundry_url = start_foundry_emulator("--jwt-public-key", str(entra.public_key), log_dir=tmp_path)
    token_dir = tmp_path / "token"
    token_dir.mkdir(mode=0o770)
    os.chown(token_dir, 10001, 10001)
    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o755)  # the gateway runs as 10001; its config is no secret
    config_dir.chmod(0o755)
    gateway_port, admin_port, sidecar_port = free_port(), free_port(), free_port()
    # Both images trace, to a receiver on the host: the gateway's span export process runs in its image too.
    receiver = Receiver()
    tracing = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
               "OTEL_BSP_SCHEDULE_DELAY": "100"}  # fmt: skip
    (config_dir / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "server": {
                    "host": "127.0.0.1",
                    "port": gateway_port,
                    "admin_host": "127.0.0.1",
                    "admin_port": admin_port,
                },
                "upstreams": [{"name": "local", "base_url": foundry_url, "auth": {"type": "entra"}}],
                "routes": [{"model": "claude-sonnet-4-5", "targets": [{"upstream": "local", "deployment": "sonnet"}]}],
            }
        )
    )
    (config_dir / "config.yaml").chmod(0o644)
    entra.ca_file.chmod(0o644)  # a CA certificate is public; the container user must read it
    tmp_path.chmod(0o755)
    sidecar = Container(
        images["token-sidecar"],
        "sidecar",
        tmp_path,
        {
            "AZURE_TENANT_ID": entra.tenant,
            "AZURE_CLIENT_ID": "image-app",
            "AZURE_CLIENT_SECRET": SECRET,
            "AZURE_AUTHORITY_HOST": entra.authority,
            "SSL_CERT_FILE": "/etc/foundry-gateway/entra-ca.pem",
            "TOKEN_SIDECAR_OUTPUT": "/var/run/foundry-token/token.json",
            "TOKEN_SIDECAR_HEALTH_PORT": str(sidecar_port),
            "TOKEN_SIDECAR_HEALTH_HOST": "127.0.0.1",
            **tracing,
        },
        # /var/run is a link to /run, and buildah's chroot mounts its own /run: mount the token dir there.
        [f"{token_dir}:/run/foundry-token:rw", f"{entra.ca_file}:/etc/foundry-gateway/entra-ca.pem:ro"],
    )
    containers = [sidecar]
    try:
        wait_http(f"http://127.0.0.1:{sidecar_port}/readyz", timeout=60, proc=sidecar.process)
        token = token_dir / "token.json"
        assert token.stat().st_uid == 10001 and oct(token.stat().st_mode & 0o777) == "0o640"
        gateway = Container(
            images["gateway"], "gateway", tmp_path, tracing,
            [f"{config_dir}:/etc/foundry-gateway/config:ro", f"{token_dir}:/run/foundry-token:ro"],
        )  # fmt: skip
        containers.append(gateway)
        wait_http(f"http://127.0.0.1:{admin_port}/readyz", timeout=60, proc=gateway.process)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway_port}/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi image"}]
        )
        assert reply.choices[0].message.content == "You said: hi image"
        assert receiver.wait_for(1, timeout=30, name="chat claude-sonnet-4-5", kind=SERVER)
        assert receiver.wait_for(1, timeout=30, name="token_sidecar refresh")
        for container in containers:
            changed = {p for p, m in container.snapshot().items() if container.before.get(p) != m}
            assert changed == set(), f"{container.process.name} wrote to its root filesystem: {sorted(changed)[:5]}"
            assert SECRET not in container.process.log()
    finally:
        for container in reversed(containers):
            container.stop()
        foundry.stop()
        entra.process.stop()
        receiver.close()
