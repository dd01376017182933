"""The upstream side: Foundry's endpoints, the gateway's credentials for them, the exchange (attempts,
fallbacks, cooldowns) and reading what comes back. The gateway's only outbound I/O is here."""
