"""azure-identity's async credentials, built from a TokenSpec.

A new credential is made for every refresh. azure-identity caches tokens and, inside its
refresh window, quietly returns the cached token when a refresh fails (and won't ask again
within 30 s), which would hide an outage from the sidecar. The sidecar is the cache here,
so each attempt must really go to Entra and really fail when Entra does.
"""

from __future__ import annotations

import os
from typing import Any

from azure.core.credentials_async import AsyncSupportsTokenInfo
from azure.identity.aio import CertificateCredential, ClientSecretCredential, WorkloadIdentityCredential

from token_sidecar.config import PUBLIC_AUTHORITY, TokenSpec


class CredentialSetupError(Exception):
    """The credential cannot even be built (a secret variable unset, a file unreadable)."""


def _secret(spec: TokenSpec) -> str:
    if spec.client_secret_file is not None:
        try:
            secret = spec.client_secret_file.read_text().strip()
        except OSError as exc:
            raise CredentialSetupError(f"client secret file {spec.client_secret_file}: {exc.strerror}") from None
        if not secret:
            raise CredentialSetupError(f"client secret file {spec.client_secret_file} is empty")
        return secret
    assert spec.client_secret_env is not None
    secret = os.environ.get(spec.client_secret_env, "").strip()
    if not secret:
        raise CredentialSetupError(f"environment variable {spec.client_secret_env} is not set or empty")
    return secret


def build_credential(spec: TokenSpec, ca_file: str | None) -> AsyncSupportsTokenInfo:
    options: dict[str, Any] = {}
    if spec.authority_host:
        options["authority"] = spec.authority_host
        if PUBLIC_AUTHORITY not in spec.authority_host:
            # Instance discovery asks the public cloud about the authority; off it, that fails.
            options["disable_instance_discovery"] = True
    if ca_file:
        # The async transport uses aiohttp, which reads no REQUESTS_CA_BUNDLE.
        options["connection_verify"] = ca_file
    if spec.kind == "certificate":
        password = os.environ.get(spec.certificate_password_env or "", "") or None
        return CertificateCredential(
            spec.tenant_id, spec.client_id, certificate_path=str(spec.certificate_path), password=password, **options
        )
    if spec.kind == "workload_identity":
        return WorkloadIdentityCredential(
            tenant_id=spec.tenant_id,
            client_id=spec.client_id,
            token_file_path=str(spec.federated_token_file),
            **options,
        )
    return ClientSecretCredential(spec.tenant_id, spec.client_id, _secret(spec), **options)
