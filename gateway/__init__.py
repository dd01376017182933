"""foundry-gateway: one door for in-cluster services to Claude on Azure AI Foundry."""

__version__ = "0.1.0"
