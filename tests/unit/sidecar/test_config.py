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


SETTINGS = [
    # (flag, value, field, expected): every process-wide setting, by flag and by variable
    ("health-host", "127.0.0.1", "health_host", "127.0.0.1"),
    ("health-port", "9999", "health_port", 9999),
    ("ready-margin", "60", "ready_margin_seconds", 60.0),
    ("refresh-fraction", "0.5", "refresh_fraction", 0.5),
    ("jitter", "0.2", "jitter_fraction", 0.2),
    ("attempt-timeout", "5", "attempt_timeout_seconds", 5.0),
    ("retry-initial", "0.5", "retry_initial_seconds", 0.5),
    ("retry-max", "30", "retry_max_seconds", 30.0),
    ("ca-file", "/ca.pem", "ca_file", Path("/ca.pem")),
    ("log-level", "debug", "log_level", "debug"),
    ("log-format", "console", "log_format", "console"),
]


@pytest.mark.parametrize(("name", "value", "field", "expected"), SETTINGS, ids=[s[0] for s in SETTINGS])
def test_every_setting_is_a_flag_and_a_variable(name: str, value: str, field: str, expected: object) -> None:
    env = {**BASE, "AZURE_CLIENT_SECRET": "s"}
    by_flag, _ = load(["--output", "/o", f"--{name}", value], env)
    variable = "TOKEN_SIDECAR_" + name.upper().replace("-", "_")
    by_variable, _ = load(["--output", "/o"], {**env, variable: value})
    assert getattr(by_flag, field) == expected == getattr(by_variable, field)


def test_the_flag_table_covers_every_setting_of_the_process() -> None:
    from token_sidecar.config import _SETTINGS, SidecarConfig

    assert {field for field, _, _ in _SETTINGS} == set(SidecarConfig.model_fields) - {"tokens"}
    assert {name for name, *_ in SETTINGS} == {name for _, name, _ in _SETTINGS}


def test_a_bad_value_names_its_flag_and_variable() -> None:
    with pytest.raises(SidecarConfigError, match=r"health_port \(--health-port or TOKEN_SIDECAR_HEALTH_PORT\)"):
        load(["--output", "/o", "--health-port", "eighty"], {**BASE, "AZURE_CLIENT_SECRET": "s"})
