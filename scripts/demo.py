"""make demo: the Foundry emulator and the gateway as real processes, and a reply streamed through the OpenAI SDK."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from openai import OpenAI

from tests.harness import start_foundry_emulator, start_gateway, stopping


def main() -> int:
    api_key = secrets.token_urlsafe(24)
    emulator, foundry_url = start_foundry_emulator("--api-key", api_key, "--event-delay", "0.05")
    config = {
        "logging": {"format": "console"},
        "upstreams": [
            {
                "name": "local-foundry",
                "base_url": foundry_url,
                "auth": {"type": "api_key", "key_env": "FOUNDRY_API_KEY"},
            }
        ],
        "routes": [
            {
                "model": "claude-sonnet-4-5",
                "targets": [{"upstream": "local-foundry", "deployment": "claude-sonnet-4-5"}],
            }
        ],
    }
    gateway, base, _ = start_gateway(config, env={"FOUNDRY_API_KEY": api_key})
    with stopping(gateway, emulator):
        print(f"Foundry emulator at {foundry_url}\ngateway at {base}\n")
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
        print("\ngateway log:\n" + gateway.log())
    return 0


if __name__ == "__main__":
    sys.exit(main())
