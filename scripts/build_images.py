"""make images: builds Dockerfile.gateway and Dockerfile.sidecar with docker, podman or buildah.

docker when its engine answers, else podman, else buildah (both honour STORAGE_DRIVER and
BUILDAH_ISOLATION, e.g. vfs and chroot on machines without overlay or user namespaces).
`--ca-bundle PATH` mounts a CA bundle into the build and points pip at it, for TLS-inspecting
proxies; it never goes into the Dockerfiles.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = {"gateway": "Dockerfile.gateway", "token-sidecar": "Dockerfile.sidecar"}


def engine(choice: str) -> list[str]:
    if choice != "auto":
        return [choice]
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        return ["docker"]
    for name in ("podman", "buildah"):
        if shutil.which(name):
            return [name]
    raise SystemExit("no docker engine, podman or buildah found")


def build(tool: list[str], dockerfile: str, tag: str, args: argparse.Namespace) -> None:
    command = [*tool, *storage(tool), "build", "-f", dockerfile, "-t", tag, "--build-arg", f"VERSION={args.version}"]
    if args.base:
        command += ["--build-arg", f"BASE_IMAGE={args.base}"]
    if args.ca_bundle:
        command += ["-v", f"{args.ca_bundle}:/etc/ssl/certs/ca-certificates.crt:ro",
                    "--build-arg", "PIP_CERT=/etc/ssl/certs/ca-certificates.crt"]  # fmt: skip
    command.append(str(ROOT))
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def storage(tool: list[str]) -> list[str]:
    # buildah 1.28 ignores the STORAGE_DRIVER variable; the flag works for podman and buildah alike.
    driver = os.environ.get("STORAGE_DRIVER")
    return ["--storage-driver", driver] if driver and tool[0] in ("podman", "buildah") else []


def size(tool: list[str], tag: str) -> str:
    cmd = [*tool, *storage(tool), "images", "--format", "{{.Size}}", tag]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--engine", default="auto", choices=["auto", "docker", "podman", "buildah"])
    p.add_argument("--base", help="BASE_IMAGE for both images (default: the Dockerfiles' python slim)")
    p.add_argument("--ca-bundle", help="CA bundle to mount for pip during the build")
    p.add_argument("--tag", default="local", help="image tag")
    p.add_argument("--version", default="0.1.0")
    args = p.parse_args()
    tool = engine(args.engine)
    for name, dockerfile in IMAGES.items():
        tag = f"localhost/foundry-gateway-{name}:{args.tag}"
        build(tool, dockerfile, tag, args)
        print(f"{tag}: {size(tool, tag)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
