"""Inbound identity: which client is calling (API keys, Kubernetes service accounts), what it may use, how fast."""
