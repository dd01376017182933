"""Images built from the real Dockerfiles on a local Debian base, with buildah (no Docker engine here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.harness import ROOT

BASE = "localhost/fgw-base:bookworm"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # buildah 1.28 reads no STORAGE_DRIVER variable: the flag, every time, or images go missing.
    command = ["buildah", "--storage-driver", ENV["STORAGE_DRIVER"], *args]
    if args[0] == "run":
        command[3:3] = ["--isolation", ENV["BUILDAH_ISOLATION"]]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, check=check, timeout=900)


def ensure_base_image() -> None:
    """A Debian bookworm base with python3, made offline from registries: debootstrap, then podman import."""
    if buildah("inspect", "--type", "image", BASE, check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm",
             str(rootfs), "http://deb.debian.org/debian"],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "--storage-driver", "vfs", "import", "-", BASE], stdin=tar.stdout, check=True,
                       capture_output=True, timeout=600)  # fmt: skip
        tar.wait()


@pytest.fixture(scope="session")
def images() -> Iterator[dict[str, str]]:
    for tool in ("buildah", "podman", "debootstrap"):
        assert shutil.which(tool), f"{tool} is missing: `make image-tools` installs it"
    ensure_base_image()
    result = subprocess.run(
        [sys.executable, "scripts/build_images.py", "--engine", "buildah", "--base", BASE, "--ca-bundle", CA_BUNDLE,
         "--tag", "test"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    for line in result.stdout.splitlines():
        if line.startswith("localhost/"):
            print(f"\nimage size: {line}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield {
        "gateway": "localhost/foundry-gateway-gateway:test",
        "token-sidecar": "localhost/foundry-gateway-token-sidecar:test",
    }
    # vfs stores every layer in full: drop the images that rebuilding untagged.
    buildah("rmi", "--prune", check=False)
