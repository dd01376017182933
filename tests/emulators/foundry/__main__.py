"""python -m tests.emulators.foundry --port N --api-key KEY [--bearer-token T ...]"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

import orjson
from aiohttp import web

from tests.emulators.foundry.server import EmulatorState, create_app


async def serve(args: argparse.Namespace) -> None:
    tokens = set(args.bearer_token)
    state = EmulatorState(
        api_keys=set(args.api_key),
        bearer_check=(lambda t: None if t in tokens else "unknown token") if tokens else None,
        deployments=set(args.deployment) if args.deployment else None,
        event_delay=args.event_delay,
    )
    runner = web.AppRunner(create_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    sys.stdout.write(orjson.dumps({"event": "listening", "port": runner.addresses[0][1]}).decode() + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.foundry")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", action="append", default=[], help="an accepted API key (repeatable)")
    parser.add_argument("--bearer-token", action="append", default=[], help="an accepted bearer token (repeatable)")
    parser.add_argument(
        "--deployment", action="append", default=[], help="a deployment name (repeatable; default: any)"
    )
    parser.add_argument("--event-delay", type=float, default=0.0, help="seconds between stream events")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
