"""Sidecar settings from the standard Azure variables, flags and files."""

from __future__ import annotations

from pathlib import Path

import pytest

from token_sidecar.config import SidecarConfigError, load

BASE = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c"}


@pytest.mark.parametrize(
    ("extra", "kind"),
    [
        ({"AZURE_CLIENT_SECRET": "s"}, "client_secret"),
        ({"AZURE_CLIENT_CERTIFICATE_PATH": "/c.pem"}, "certificate"),
        ({"AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token"}, "workload_identity"),
    ],
)
def test_credential_kind_from_the_environment(extra: dict[str, str], kind: str) -> None:
    config, once = load(["--output", "/run/t.json"], {**BASE, **extra})
    spec = config.tokens[0]
    assert spec.kind == kind and spec.scope == "https://ai.azure.com/.default" and not once
    assert spec.mode == 0o640


def test_flags_and_prefixed_variables() -> None:
    env = {**BASE, "AZURE_CLIENT_SECRET": "s", "TOKEN_SIDECAR_OUTPUT": "/run/t.json", "TOKEN_SIDECAR_MODE": "0600"}
    config, once = load(["--scope", "https://cognitiveservices.azure.com/.default", "--once"], env)
    assert config.tokens[0].scope.startswith("https://cognitiveservices") and config.tokens[0].mode == 0o600 and once


def test_secret_file_wins_over_the_variable() -> None:
    config, _ = load(["--output", "/o", "--client-secret-file", "/s"], {**BASE, "AZURE_CLIENT_SECRET": "x"})
    assert config.tokens[0].client_secret_file == Path("/s") and config.tokens[0].client_secret_env is None


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        ([], {**BASE, "AZURE_CLIENT_SECRET": "s"}, "--output"),
        (["--output", "/o"], BASE, "set exactly one credential"),
        (["--output", "/o"], {"AZURE_CLIENT_SECRET": "s"}, "tokens.0.tenant_id"),
        (["--output", "/o", "--scope", "https://ai.azure.com"], {**BASE, "AZURE_CLIENT_SECRET": "s"}, "/.default"),
    ],
)
def test_errors_name_the_problem(argv: list[str], env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SidecarConfigError, match=fragment.replace(".", r"\.")):
        load(argv, env)


def test_several_tokens_from_a_file(tmp_path: Path) -> None:
    file = tmp_path / "sidecar.yaml"
    file.write_text(
        "ready_margin_seconds: 60\n"
        "tokens:\n"
        "  - {name: east, tenant_id: t1, client_id: c1, client_secret_env: EAST_SECRET, output: /run/east.json}\n"
        "  - {name: west, tenant_id: t2, client_id: c2, federated_token_file: /f, output: /run/west.json,\n"
        "     scope: 'https://cognitiveservices.azure.com/.default'}\n"
    )
    config, _ = load(["--config", str(file)], {})
    assert [t.name for t in config.tokens] == ["east", "west"] and config.ready_margin_seconds == 60
    file.write_text("tokens:\n  - {name: east, tenant_id: t1, client_id: c1, output: /o, bogus: 1}\n")
    with pytest.raises(SidecarConfigError, match=r"tokens\.0\.bogus"):
        load(["--config", str(file)], {})
