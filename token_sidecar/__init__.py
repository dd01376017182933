"""Token sidecar: keeps a fresh Entra ID access token in a file for the gateway."""

__version__ = "0.1.0"
