"""python -m tests.emulators.entra --cert C --key K --tenant T --client ID:SECRET ..."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
from pathlib import Path

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.emulators.entra.server import Client, EntraState, create_app


def _clients(args: argparse.Namespace) -> dict[str, Client]:
    clients: dict[str, Client] = {}
    for item in args.client:
        client_id, _, secret = item.partition(":")
        clients[client_id] = Client(client_id, secret=secret)
    for item in args.cert_client:
        client_id, _, pem = item.partition(":")
        cert = x509.load_pem_x509_certificate(Path(pem).read_bytes())
        clients[client_id] = Client(client_id, certificate_key=cert.public_key())
    for item in args.federated_client:
        client_id, pem, subject = item.split(":", 2)
        key = serialization.load_pem_public_key(Path(pem).read_bytes())
        clients[client_id] = Client(client_id, federated_key=key, federated_subject=subject)
    return clients


async def serve(args: argparse.Namespace, state: EntraState) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    runner = web.AppRunner(create_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, ssl_context=context)
    await site.start()
    sys.stdout.write(orjson.dumps({"event": "listening", "port": runner.addresses[0][1]}).decode() + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.emulators.entra")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    p.add_argument("--key", required=True, help="server private key (PEM)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--client", action="append", default=[], help="CLIENT_ID:SECRET")
    p.add_argument("--cert-client", action="append", default=[], help="CLIENT_ID:CERT_PEM_PATH")
    p.add_argument("--federated-client", action="append", default=[], help="CLIENT_ID:ISSUER_PUBLIC_KEY_PEM:SUBJECT")
    p.add_argument("--lifetime", type=int, default=3600, help="access token lifetime, seconds")
    p.add_argument("--public-key-out", help="write the token-signing public key (PEM) here")
    args = p.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if args.public_key_out:
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        Path(args.public_key_out).write_bytes(pem)
    state = EntraState(tenant=args.tenant, signing_key=key, clients=_clients(args), lifetime=args.lifetime)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args, state))


if __name__ == "__main__":
    main()
