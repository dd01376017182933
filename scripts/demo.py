"""make demo: the whole pod on this machine, as real processes.

An HTTPS Entra ID emulator, a Foundry emulator that verifies Entra tokens, the token
sidecar writing its token into a temp directory (the pod's shared in-memory volume), and
the gateway authenticating with it; then a reply streamed through the OpenAI SDK.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from openai import OpenAI

from devtools.harness import start_entra_emulator, start_foundry_emulator, start_gateway, start_sidecar, stopping


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="foundry-gateway-demo-"))
    client_secret = secrets.token_urlsafe(24)
    entra = start_entra_emulator(work, clients={"demo-app": client_secret})
    foundry, foundry_url = start_foundry_emulator(
        "--jwt-public-key", str(entra.public_key), "--event-delay", "0.05", log_dir=work
    )
    token_file = work / "foundry-token" / "token.json"
    sidecar, sidecar_health = start_sidecar(
        ["--output", str(token_file), "--log-format", "console"],
        {
            "AZURE_TENANT_ID": entra.tenant,
            "AZURE_CLIENT_ID": "demo-app",
            "AZURE_CLIENT_SECRET": client_secret,
            "AZURE_AUTHORITY_HOST": entra.authority,
            "SSL_CERT_FILE": str(entra.ca_file),
        },
        work,
    )
    with stopping(sidecar, foundry, entra.process):
        deadline = time.monotonic() + 20
        while not token_file.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the token sidecar wrote no token:\n" + sidecar.log())
            time.sleep(0.05)
        config = {
            "logging": {"format": "console"},
            "upstreams": [
                {
                    "name": "local-foundry",
                    "base_url": foundry_url,
                    "auth": {"type": "entra", "token_file": str(token_file)},
                }
            ],
            "routes": [
                {
                    "model": "claude-sonnet-4-5",
                    "targets": [{"upstream": "local-foundry", "deployment": "claude-sonnet-4-5"}],
                }
            ],
        }
        gateway, base, _ = start_gateway(config, log_dir=work)
        with stopping(gateway):
            print(f"Entra emulator   {entra.authority} (HTTPS, tenant {entra.tenant})")
            print(f"Foundry emulator {foundry_url} (verifies Entra tokens)")
            print(f"token sidecar    {sidecar_health} -> {token_file}")
            print(f"gateway          {base}\n")
            client = OpenAI(base_url=base + "/v1", api_key="unused-inbound-auth-is-off")
            print("models:", ", ".join(m.id for m in client.models.list()))
            prompt = "Tell me how this gateway streams Claude replies to OpenAI clients, one word at a time."
            print(f"> {prompt}\n")
            stream = client.chat.completions.create(
                model="claude-sonnet-4-5",
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    print(chunk.choices[0].delta.content, end="", flush=True)
                if chunk.usage:
                    usage = chunk.usage
                    print(f"\n\n[usage: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens]")
            question = "And the same through the Responses API."
            print(f"\n> {question}\n")
            with client.responses.stream(model="claude-sonnet-4-5", input=question) as events:
                for event in events:
                    if event.type == "response.output_text.delta":
                        print(event.delta, end="", flush=True)
                answer = events.get_final_response()
            print(f"\n\n[{answer.id}: {answer.status}, {answer.usage.total_tokens if answer.usage else 0} tokens]")
            print("\nsidecar log:\n" + sidecar.log())
            print("gateway log:\n" + gateway.log())
    print(f"(logs and files in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
