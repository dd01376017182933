"""A local stand-in for Azure AI Foundry's Anthropic endpoint, faithful enough to catch translation bugs.

It validates requests as the Messages API does, checks credentials, answers
deterministically (so tests can assert on content), streams the real event order, and
injects faults on request. Run it with `python -m tests.emulators.foundry --port N`.
"""
