"""A local Microsoft Entra ID token endpoint that real azure-identity accepts, over HTTPS.

It issues RS256-signed JWT access tokens (aud, tid, exp) for client secrets, certificate
assertions and federated (Workload Identity) assertions, answers failures in Entra's
AADSTS error shapes, and can be told to fail. Run it with `python -m tests.emulators.entra`.
"""
