"""The sidecar's settings: from the standard Azure variables and flags, or from a file for several tokens.

Each setting is declared once, as a field below. A field marked with `flag("name")` is also the
command-line flag `--name` and the variable `TOKEN_SIDECAR_NAME`; the parser is built from the
fields, so a setting cannot exist in one place and be missing from another.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_SCOPE = "https://ai.azure.com/.default"
PUBLIC_AUTHORITY = "login.microsoftonline.com"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def flag(name: str) -> dict[str, Any]:
    """Marks a field as also settable by `--name` and `TOKEN_SIDECAR_NAME` (dashes as underscores)."""
    return {"flag": name}


def _variable(name: str) -> str:
    return "TOKEN_SIDECAR_" + name.upper().replace("-", "_")


class TokenSpec(_Model):
    """One token to keep fresh: who asks for it, for what, and where it is written."""

    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$", description="Label in logs and metrics.")
    scope: str = Field(
        DEFAULT_SCOPE,
        description="Entra scope; https://cognitiveservices.azure.com/.default works too.",
        json_schema_extra=flag("scope"),
    )
    output: Path = Field(description="Token file the gateway reads.", json_schema_extra=flag("output"))
    mode: int = Field(
        0o640,
        ge=0,
        le=0o777,
        description="File mode of the token file (octal: 0640 as a flag, 0o640 in YAML).",
        json_schema_extra=flag("mode"),
    )
    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    authority_host: str | None = Field(None, description="Entra host for sovereign clouds (and tests).")
    client_secret_env: str | None = Field(None, description="Variable holding the client secret.")
    client_secret_file: Path | None = Field(
        None,
        description="File holding the client secret (a mounted Secret).",
        json_schema_extra=flag("client-secret-file"),
    )
    certificate_path: Path | None = Field(None, description="PEM or PKCS12 certificate with its private key.")
    certificate_password_env: str | None = None
    federated_token_file: Path | None = Field(None, description="Azure Workload Identity's projected token.")

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> Any:
        return int(value, 8) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_credential(self) -> TokenSpec:
        sources = [self.client_secret_env, self.client_secret_file, self.certificate_path, self.federated_token_file]
        if sum(s is not None for s in sources) != 1:
            raise ValueError(
                "set exactly one credential: client_secret_env, client_secret_file, "
                "certificate_path or federated_token_file"
            )
        if not self.scope.endswith("/.default"):
            raise ValueError(f"scope must end in /.default for client credentials, got {self.scope!r}")
        return self

    @property
    def kind(self) -> Literal["client_secret", "certificate", "workload_identity"]:
        if self.certificate_path is not None:
            return "certificate"
        if self.federated_token_file is not None:
            return "workload_identity"
        return "client_secret"


class SidecarConfig(_Model):
    tokens: list[TokenSpec] = Field(min_length=1)
    health_host: str = Field("0.0.0.0", description="Address of /healthz, /readyz and /metrics.",
                             json_schema_extra=flag("health-host"))  # fmt: skip
    health_port: int = Field(8081, ge=0, le=65535, description="Their port.", json_schema_extra=flag("health-port"))
    ready_margin_seconds: float = Field(
        300,
        ge=0,
        description="Ready while every token has more than this left.",
        json_schema_extra=flag("ready-margin"),
    )
    refresh_fraction: float = Field(
        2 / 3,
        gt=0,
        lt=1,
        description="Refresh at this share of the lifetime.",
        json_schema_extra=flag("refresh-fraction"),
    )
    jitter_fraction: float = Field(
        0.1, ge=0, lt=1, description="Refresh up to this share earlier, at random.", json_schema_extra=flag("jitter")
    )
    attempt_timeout_seconds: float = Field(
        30, gt=0, description="Give up on one token request after this long.", json_schema_extra=flag("attempt-timeout")
    )
    retry_initial_seconds: float = Field(
        2, gt=0, description="First wait after a failed refresh.", json_schema_extra=flag("retry-initial")
    )
    retry_max_seconds: float = Field(
        300, gt=0, description="Longest wait between failed refreshes.", json_schema_extra=flag("retry-max")
    )
    ca_file: Path | None = Field(
        None,
        description="CA bundle for Entra's TLS (corporate proxies, tests); default: SSL_CERT_FILE.",
        json_schema_extra=flag("ca-file"),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe level logged.", json_schema_extra=flag("log-level")
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="json for clusters, console for people.", json_schema_extra=flag("log-format")
    )


def _flagged(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """(field, flag, help) for each field of `model` that is also a flag."""
    out = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("flag"), str):
            out.append((name, str(extra["flag"]), info.description or ""))
    return out


_SETTINGS = _flagged(SidecarConfig)  # for the process
_TOKEN = _flagged(TokenSpec)  # for the one token the Azure variables describe


class SidecarConfigError(Exception):
    pass


def _errors(source: str, exc: ValidationError) -> SidecarConfigError:
    flags = {field: name for field, name, _ in (*_SETTINGS, *_TOKEN)}
    lines = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"])
        name = flags.get(str(err["loc"][-1])) if err["loc"] else None
        where = f" (--{name} or {_variable(name)})" if name else ""
        lines.append(f"  {key or '(top level)'}{where}: {err['msg']}")
    return SidecarConfigError(f"invalid token sidecar config {source}:\n" + "\n".join(lines))


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m token_sidecar", description="Keeps Entra ID tokens fresh in files.")
    p.add_argument("--config", default=env.get("TOKEN_SIDECAR_CONFIG") or None, help="YAML file with several tokens")
    p.add_argument(
        "--once",
        action="store_true",
        default=env.get("TOKEN_SIDECAR_ONCE", "") in ("1", "true"),
        help="write one token, exit",
    )
    for _, name, description in (*_SETTINGS, *_TOKEN):
        p.add_argument(f"--{name}", default=None, help=f"{description} (or {_variable(name)})")
    return p.parse_args(argv)


def _given(args: argparse.Namespace, env: Mapping[str, str], fields: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The settings a flag or its variable gives (an empty variable is unset, as Kubernetes renders
    optional values); the rest keep their defaults, or what a config file says."""
    given: dict[str, Any] = {}
    for field, name, _ in fields:
        value = getattr(args, name.replace("-", "_")) or env.get(_variable(name)) or None
        if value is not None:
            given[field] = value
    return given


def _spec_from_env(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    """The token the standard Azure variables describe, as Workload Identity's webhook injects them."""
    spec: dict[str, Any] = {
        **_given(args, env, _TOKEN),
        "tenant_id": env.get("AZURE_TENANT_ID", ""),
        "client_id": env.get("AZURE_CLIENT_ID", ""),
    }
    if env.get("AZURE_AUTHORITY_HOST"):
        spec["authority_host"] = env["AZURE_AUTHORITY_HOST"]
    if "client_secret_file" in spec:
        pass  # a mounted Secret wins over the variables
    elif env.get("AZURE_CLIENT_SECRET"):
        spec["client_secret_env"] = "AZURE_CLIENT_SECRET"
    elif env.get("AZURE_CLIENT_CERTIFICATE_PATH"):
        spec["certificate_path"] = env["AZURE_CLIENT_CERTIFICATE_PATH"]
        if env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"):
            spec["certificate_password_env"] = "AZURE_CLIENT_CERTIFICATE_PASSWORD"
    elif env.get("AZURE_FEDERATED_TOKEN_FILE"):
        spec["federated_token_file"] = env["AZURE_FEDERATED_TOKEN_FILE"]
    return spec


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> tuple[SidecarConfig, bool]:
    """The config and whether to run once; raises SidecarConfigError with the key and the reason."""
    env = os.environ if env is None else env
    args = parse_args(argv, env)
    common = _given(args, env, _SETTINGS)
    if "ca_file" not in common and env.get("SSL_CERT_FILE"):
        common["ca_file"] = env["SSL_CERT_FILE"]
    if args.config:
        source = args.config
        try:
            data = yaml.safe_load(Path(args.config).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise SidecarConfigError(f"invalid token sidecar config {source}: {exc}") from None
        if not isinstance(data, dict):
            raise SidecarConfigError(f"invalid token sidecar config {source}: must be a YAML mapping")
        data = {**common, **data}
    else:
        source = (
            "(environment: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET | AZURE_CLIENT_CERTIFICATE_PATH | "
        )
        source += "AZURE_FEDERATED_TOKEN_FILE, --output)"
        if not (args.output or env.get(_variable("output"))):
            raise SidecarConfigError("token sidecar: --output (or TOKEN_SIDECAR_OUTPUT) names the token file to write")
        data = {**common, "tokens": [_spec_from_env(args, env)]}
    try:
        return SidecarConfig.model_validate(data), bool(args.once)
    except ValidationError as exc:
        raise _errors(source, exc) from None
