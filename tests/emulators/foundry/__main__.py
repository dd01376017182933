"""python -m tests.emulators.foundry --port N --api-key KEY [--bearer-token T | --jwt-public-key PEM]"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

import orjson
from aiohttp import web

from tests.emulators.foundry.hosting import Hosting
from tests.emulators.foundry.server import BearerCheck, EmulatorState, create_app, jwt_bearer_check


async def serve(host: str, port: int, state: EmulatorState) -> None:
    runner = web.AppRunner(create_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sys.stdout.write(orjson.dumps({"event": "listening", "port": runner.addresses[0][1]}).decode() + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def _static_tokens(tokens: set[str]) -> BearerCheck:
    return lambda token: None if token in tokens else "unknown token"


def _hosting(spec: str) -> Hosting:
    mode, _, betas = spec.partition(":")
    return Hosting(mode, frozenset(b for b in betas.split(",") if b))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.foundry")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", action="append", default=[], help="an accepted API key (repeatable)")
    parser.add_argument("--bearer-token", action="append", default=[], help="an accepted bearer token (repeatable)")
    parser.add_argument("--jwt-public-key", help="verify Bearer tokens as Entra JWTs signed by this key (PEM)")
    parser.add_argument(
        "--deployment", action="append", default=[], help="a deployment name (repeatable; default: any)"
    )
    parser.add_argument("--event-delay", type=float, default=0.0, help="seconds between stream events")
    parser.add_argument(
        "--hosting",
        action="append",
        default=[],
        metavar="[RESOURCE=]MODE[:BETA,...]",
        help="azure or anthropic: how a resource (/RESOURCE/anthropic), or without RESOURCE= every other, is hosted "
        "(default azure), and the beta families it lacks besides the mode's own",
    )
    parser.add_argument("--no-request-log", action="store_true", help="keep no request for /_emulator/requests")
    args = parser.parse_args()
    bearer_check: BearerCheck | None = None
    if args.jwt_public_key:
        bearer_check = jwt_bearer_check(Path(args.jwt_public_key).read_bytes())
    elif args.bearer_token:
        bearer_check = _static_tokens(set(args.bearer_token))
    named = dict(h.split("=", 1) for h in args.hosting if "=" in h)
    default = next((h for h in args.hosting if "=" not in h), "azure")
    state = EmulatorState(
        api_keys=set(args.api_key),
        bearer_check=bearer_check,
        deployments=set(args.deployment) if args.deployment else None,
        event_delay=args.event_delay,
        record=not args.no_request_log,
        hosting={resource: _hosting(spec) for resource, spec in named.items()},
        default_hosting=default,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, state))


if __name__ == "__main__":
    main()
