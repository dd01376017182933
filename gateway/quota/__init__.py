"""Foundry quota as the gateway spends it: pools metered as Foundry meters them, sessions kept on the
deployment that holds their prompt cache, requests waiting their fair turn when quota is short, and
pools shared across replicas by leases. Nothing here knows of HTTP, dialects or upstreams."""
