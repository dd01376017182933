"""The sidecar's settings: from the standard Azure variables and flags, or from a file for several tokens."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_SCOPE = "https://ai.azure.com/.default"
PUBLIC_AUTHORITY = "login.microsoftonline.com"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenSpec(_Model):
    """One token to keep fresh: who asks for it, for what, and where it is written."""

    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$", description="Label in logs and metrics.")
    scope: str = Field(
        DEFAULT_SCOPE, description="Entra scope; https://cognitiveservices.azure.com/.default works too."
    )
    output: Path = Field(description="Token file the gateway reads.")
    mode: int = Field(0o640, ge=0, le=0o777, description="File mode of the token file (octal in YAML: 0o640).")
    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    authority_host: str | None = Field(None, description="Entra host for sovereign clouds (and tests).")
    client_secret_env: str | None = Field(None, description="Variable holding the client secret.")
    client_secret_file: Path | None = Field(None, description="File holding the client secret (a mounted Secret).")
    certificate_path: Path | None = Field(None, description="PEM or PKCS12 certificate with its private key.")
    certificate_password_env: str | None = None
    federated_token_file: Path | None = Field(None, description="Azure Workload Identity's projected token.")

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
    health_host: str = "0.0.0.0"
    health_port: int = Field(8081, ge=0, le=65535)
    ready_margin_seconds: float = Field(300, ge=0, description="Ready while every token has more than this left.")
    refresh_fraction: float = Field(2 / 3, gt=0, lt=1, description="Refresh at this share of the lifetime.")
    jitter_fraction: float = Field(0.1, ge=0, lt=1, description="Refresh up to this share earlier, at random.")
    attempt_timeout_seconds: float = Field(30, gt=0, description="Give up on one token request after this long.")
    retry_initial_seconds: float = Field(2, gt=0)
    retry_max_seconds: float = Field(300, gt=0)
    ca_file: Path | None = Field(None, description="CA bundle for Entra's TLS (corporate proxies, tests).")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"


class SidecarConfigError(Exception):
    pass


def _errors(source: str, exc: ValidationError) -> SidecarConfigError:
    lines = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {key or '(top level)'}: {err['msg']}")
    return SidecarConfigError(f"invalid token sidecar config {source}:\n" + "\n".join(lines))


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    def default(name: str, fallback: Any = None) -> Any:
        # An empty variable means unset, as Kubernetes renders optional values.
        return env.get(f"TOKEN_SIDECAR_{name}") or fallback

    p = argparse.ArgumentParser(prog="python -m token_sidecar", description="Keeps Entra ID tokens fresh in files.")
    p.add_argument("--config", default=default("CONFIG"), help="YAML file with several tokens")
    p.add_argument("--scope", default=default("SCOPE", DEFAULT_SCOPE))
    p.add_argument("--output", default=default("OUTPUT"), help="token file to write")
    p.add_argument("--mode", default=default("MODE", "0640"), help="token file mode, octal")
    p.add_argument("--client-secret-file", default=default("CLIENT_SECRET_FILE"))
    p.add_argument("--health-host", default=default("HEALTH_HOST", "0.0.0.0"))
    p.add_argument("--health-port", type=int, default=int(default("HEALTH_PORT", 8081)))
    p.add_argument("--ready-margin", type=float, default=float(default("READY_MARGIN", 300)))
    p.add_argument("--attempt-timeout", type=float, default=float(default("ATTEMPT_TIMEOUT", 30)))
    p.add_argument("--retry-initial", type=float, default=float(default("RETRY_INITIAL", 2)))
    p.add_argument("--retry-max", type=float, default=float(default("RETRY_MAX", 300)))
    p.add_argument("--ca-file", default=default("CA_FILE", env.get("SSL_CERT_FILE") or None))
    p.add_argument("--log-format", default=default("LOG_FORMAT", "json"))
    p.add_argument("--log-level", default=default("LOG_LEVEL", "info"))
    p.add_argument(
        "--once", action="store_true", default=default("ONCE", "") in ("1", "true"), help="write one token, exit"
    )
    return p.parse_args(argv)


def _spec_from_env(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    """The token the standard Azure variables describe, as Workload Identity's webhook injects them."""
    spec: dict[str, Any] = {
        "scope": args.scope,
        "output": args.output,
        "mode": int(str(args.mode), 8),
        "tenant_id": env.get("AZURE_TENANT_ID", ""),
        "client_id": env.get("AZURE_CLIENT_ID", ""),
    }
    if env.get("AZURE_AUTHORITY_HOST"):
        spec["authority_host"] = env["AZURE_AUTHORITY_HOST"]
    if args.client_secret_file:
        spec["client_secret_file"] = args.client_secret_file
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
    common: dict[str, Any] = {
        "health_host": args.health_host,
        "health_port": args.health_port,
        "ready_margin_seconds": args.ready_margin,
        "attempt_timeout_seconds": args.attempt_timeout,
        "retry_initial_seconds": args.retry_initial,
        "retry_max_seconds": args.retry_max,
        "ca_file": args.ca_file,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
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
        if not args.output:
            raise SidecarConfigError("token sidecar: --output (or TOKEN_SIDECAR_OUTPUT) names the token file to write")
        data = {**common, "tokens": [_spec_from_env(args, env)]}
    try:
        return SidecarConfig.model_validate(data), bool(args.once)
    except ValidationError as exc:
        raise _errors(source, exc) from None
