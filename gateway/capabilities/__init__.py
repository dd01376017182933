"""What a Foundry deployment accepts, and fitting a request to it: each hosting option's default
profile with an upstream's changes (profile.py), and the faithful downgrades or clear refusals
that fit a Messages request to a route's deployments (fit.py). Knows nothing of HTTP."""
