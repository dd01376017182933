"""Stored responses for the Responses API, in the shared Redis (state.redis), with a time to live.

Opt-in (`responses.store_ttl_seconds`): a stored response keeps the conversation's text in Redis
for that long, which is a data decision, not a default. What it serves:

- `previous_response_id`: the stored conversation (its input and output items) goes before the
  new input, so a client may send only its new turn;
- `item_reference` items: each output item is kept under its own id too (the AI SDK's default,
  `store: true`, refers to earlier items that way);
- `GET` and `DELETE /v1/responses/{id}`.

Each stored response names the client that made it; another client is told it does not exist.
Reasoning items are kept as the client got them, sealed. Writes are awaited, bounded by
`state.redis.timeout_ms`, before the answer's last bytes go out where the handler can, so a
client that chains at once finds what it chains to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gateway.config import RedisConfig
from gateway.errors import GatewayError, echo
from gateway.shared_state import FAILURES, FailureReport, redis_client


class ResponseStore:
    def __init__(self, config: RedisConfig, ttl_seconds: int, recorder: Any) -> None:
        timeout = config.timeout_ms / 1000
        self._redis = redis_client(config)
        self._failed = FailureReport(recorder)
        # Reads and writes of whole conversations: a little more room than an admission's round trip.
        self._timeout = max(timeout, 1.0)
        self._prefix = config.key_prefix
        self._ttl = ttl_seconds

    def _response_key(self, response_id: str) -> str:
        return f"{self._prefix}response:{response_id}"

    def _item_key(self, item_id: str) -> str:
        return f"{self._prefix}item:{item_id}"

    def _unavailable(self, operation: str, exc: BaseException) -> GatewayError:
        self._failed(operation, exc)
        return GatewayError(
            503, "The response store (Redis) did not answer; retry shortly", error_type="api_error",
            headers={"retry-after": "1"},
        )  # fmt: skip

    async def save(self, response: Mapping[str, Any], conversation: Sequence[Any], client: str | None) -> None:
        """Keep a finished response: the conversation before it, its output, and each output item."""
        record = {"client": client, "input": list(conversation), "response": response}
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self._redis.pipeline(transaction=False)
                pipe.set(self._response_key(response["id"]), orjson.dumps(record), ex=self._ttl)
                for item in response.get("output", ()):
                    pipe.set(self._item_key(item["id"]), orjson.dumps({"client": client, "item": item}), ex=self._ttl)
                await pipe.execute()
        except FAILURES as exc:
            # The answer has been given; only what chains to it later will miss it.
            self._failed("store", exc)

    async def _get(self, key: str, operation: str) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self._redis.get(key)
        except FAILURES as exc:
            raise self._unavailable(operation, exc) from None
        return orjson.loads(raw) if raw is not None else None

    async def response(self, response_id: str, client: str | None, param: str = "response_id") -> dict[str, Any]:
        record = await self._get(self._response_key(response_id), "load")
        if record is None or record.get("client") != client:
            raise GatewayError(
                404,
                f"No stored response {echo(response_id)}: it never was, it expired, or it is another client's",
                param,
            )
        return dict(record)

    async def conversation(self, response_id: str, client: str | None) -> list[Any]:
        """The items a new turn continues: what the stored response was given, then what it answered."""
        record = await self.response(response_id, client, "previous_response_id")
        return [*record["input"], *record["response"].get("output", ())]

    async def items(self, ids: Sequence[str], client: str | None) -> dict[str, Any]:
        """The stored items of these ids; a missing one is a 400 that names it."""
        try:
            async with asyncio.timeout(self._timeout):
                raws = await self._redis.mget([self._item_key(i) for i in ids])
        except FAILURES as exc:
            raise self._unavailable("load", exc) from None
        found: dict[str, Any] = {}
        for item_id, raw in zip(ids, raws, strict=True):
            record = orjson.loads(raw) if raw is not None else None
            if record is None or record.get("client") != client:
                raise GatewayError(400, f"item_reference {echo(item_id)} names no stored item", "input")
            found[item_id] = record["item"]
        return found

    async def delete(self, response_id: str, client: str | None) -> None:
        record = await self.response(response_id, client)
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.delete(
                    self._response_key(response_id),
                    *(self._item_key(item["id"]) for item in record["response"].get("output", ())),
                )
        except FAILURES as exc:
            raise self._unavailable("delete", exc) from None

    async def close(self) -> None:
        await self._redis.aclose()
