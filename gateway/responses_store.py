"""Stored responses for the Responses API, in the shared Redis (state.redis), with a time to live.

Opt-in (`responses.store_ttl_seconds`): a stored response keeps the conversation's text in Redis
for that long, which is a data decision, not a default. What it serves:

- `previous_response_id`: the stored conversation (its input and output items) goes before the
  new input, so a client may send only its new turn;
- `item_reference` items: each output item is kept under its own id (the AI SDK's default,
  `store: true`, refers to earlier items that way);
- `GET` and `DELETE /v1/responses/{id}`.

Every item is stored once, under its own key. A response's record names the items of its
conversation by id, so a turn that continues (or forks) a stored conversation adds only its new
input and its output, never a copy of what is already there; each save extends the life of the
items it names, so a conversation lives as long as its newest turn. Two bounds keep one client
from filling the Redis every client's limits live in: the bytes one response adds
(`max_stored_bytes_per_response`, checked on the new input before anything is sent) and the
bytes one client adds over two TTL windows (`max_stored_bytes_per_client`).

Every key lives in its client's namespace (`{prefix}{client}:...`, one Redis Cluster slot per
client): another client's id is simply not there, found as fast as any missing one.
Reasoning items are kept as the client got them, sealed. Writes are awaited before the
answer's last bytes go out where the handler can, so a client that chains at once finds what it
chains to. Calls are bounded by the larger of `state.redis.timeout_ms` and a second: records
are whole conversations, not counters.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.config import GatewayConfig, RedisConfig, ResponsesConfig
from gateway.errors import GatewayError, echo, invalid_request
from gateway.shared_state import FAILURES, FailureReport, redis_client

STORE_TIMEOUT_SECONDS = 1.0  # the least a store call may take: a record can be megabytes


# A response id of the gateway's own: this process's random prefix and a count, unique across
# replicas and restarts without a system call per request. Ids need not be secret: a stored
# response lives in its client's namespace, where no other client looks.
_ID_PREFIX = "resp_" + os.urandom(12).hex()
_id_count = itertools.count()


def new_response_id() -> str:
    """A response id of the gateway's own: stored responses are keyed by it."""
    return f"{_ID_PREFIX}{next(_id_count):024x}"


@dataclass(slots=True)
class Resolved:
    """A request's input with its stored parts filled in, and what storing its answer will write."""

    items: list[Any]  # the whole input, as the translator takes it
    ids: list[str] = field(default_factory=list)  # the whole input by stored id, for the record
    new: list[tuple[str, bytes]] = field(default_factory=list)  # (id, JSON) of input items not yet stored
    new_bytes: int = 0


class ResponseStore:
    def __init__(
        self, config: RedisConfig, settings: ResponsesConfig, recorder: Any, clock: Callable[[], float] = time.time
    ) -> None:
        assert settings.store_ttl_seconds is not None
        self.redis_config = config
        self.settings = settings
        self._timeout = max(config.timeout_ms / 1000, STORE_TIMEOUT_SECONDS)
        # A client of its own: the limiter's socket timeout (timeout_ms, 50 ms by default) is far too
        # short to move a large record.
        self._redis = redis_client(config, self._timeout)
        self._failed = FailureReport(recorder)
        self._prefix = config.key_prefix
        self._ttl = settings.store_ttl_seconds
        self._clock = clock

    # Keys: one namespace a client, every key of it on one cluster slot.

    def _namespace(self, client: str | None) -> str:
        return f"{self._prefix}{{{client if client is not None else '-'}}}:"

    def _response_key(self, client: str | None, response_id: str) -> str:
        return f"{self._namespace(client)}response:{response_id}"

    def _item_key(self, client: str | None, item_id: str) -> str:
        return f"{self._namespace(client)}item:{item_id}"

    def _bytes_keys(self, client: str | None) -> tuple[str, str]:
        """The client's stored-bytes counters: this TTL window's and the one before."""
        window = int(self._clock() // self._ttl)
        return f"{self._namespace(client)}bytes:{window}", f"{self._namespace(client)}bytes:{window - 1}"

    def _unavailable(self, operation: str, exc: BaseException) -> GatewayError:
        self._failed(operation, exc)
        return GatewayError(
            503, "The response store (Redis) did not answer; retry shortly", error_type="api_error",
            headers={"retry-after": "1"},
        )  # fmt: skip

    async def _call(self, operation: str, work: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await work
        except FAILURES as exc:
            raise self._unavailable(operation, exc) from None

    # What a request continues.

    async def resolve(self, body: Mapping[str, Any], client: str | None, keep: bool) -> Resolved | None:
        """The request's input with `previous_response_id` and each `item_reference` filled in; None
        for an input that is neither a string nor a list, which the translator refuses as sent.

        With `keep` (it will be stored), its new items are serialised now, so what cannot be
        stored is a 400 before Foundry is called, and the bounds are checked: over them, a 413 or
        a 429 that names the bound, before anything is sent."""
        source = body.get("input")
        items: Any = [{"role": "user", "content": source}] if isinstance(source, str) else source
        if not isinstance(items, list):
            return None
        previous = body.get("previous_response_id")
        if previous is not None and not isinstance(previous, str):
            raise invalid_request("'previous_response_id' must be a string", "previous_response_id")
        references = _references(items)
        record, stored_bytes = await self._record_and_bytes(previous, client, keep)
        before: list[str] = []
        if previous is not None:
            if record is None:
                raise _no_such_response(previous, "previous_response_id")
            before = [*record["input"], *record["output"]]
        found = await self._items([*before, *references.values()], client)
        if any(i not in found for i in before):
            assert previous is not None
            raise GatewayError(
                404,
                f"Part of the stored conversation of {echo(previous)} has expired or was deleted; "
                "send the whole conversation instead",
                "previous_response_id",
            )
        resolved = Resolved([found[i] for i in before], list(before))
        for index, item in enumerate(items):
            reference = references.get(index)
            if reference is not None:
                if reference not in found:
                    raise invalid_request(f"item_reference {echo(reference)} names no stored item", "input")
                resolved.items.append(found[reference])
                resolved.ids.append(reference)
                continue
            resolved.items.append(item)
            if keep:
                stored = _encoded(item, index)
                item_id = "in_" + os.urandom(12).hex()
                resolved.ids.append(item_id)
                resolved.new.append((item_id, stored))
                resolved.new_bytes += len(stored)
        if keep:
            self._check_bounds(resolved.new_bytes, stored_bytes)
        return resolved

    def _check_bounds(self, new_bytes: int, stored_bytes: int) -> None:
        per_response, per_client = (
            self.settings.max_stored_bytes_per_response,
            self.settings.max_stored_bytes_per_client,
        )
        if new_bytes > per_response:
            raise GatewayError(
                413,
                f"This request's input is {new_bytes} bytes, over the {per_response} bytes one stored response may "
                "hold (responses.max_stored_bytes_per_response); send it with store: false",
                "input",
                error_type="request_too_large",
            )
        if stored_bytes + new_bytes > per_client:
            wait = self._ttl - self._clock() % self._ttl
            raise GatewayError(
                429,
                f"This client has stored {stored_bytes} bytes of responses, and this request would pass the "
                f"{per_client} bytes a client may store (responses.max_stored_bytes_per_client); send it with "
                f"store: false, or retry in {math.ceil(wait)} s",
                error_type="rate_limit_error",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )

    async def _record_and_bytes(
        self, previous: str | None, client: str | None, keep: bool
    ) -> tuple[dict[str, Any] | None, int]:
        """The record `previous` names (None when there is none) and the bytes the client has stored
        lately (0 when nothing will be stored): one round trip, or none when neither is wanted."""
        keys = ([self._response_key(client, previous)] if previous is not None else []) + (
            list(self._bytes_keys(client)) if keep else []
        )
        if not keys:
            return None, 0
        raws = await self._call("load", self._redis.mget(keys))
        record = orjson.loads(raws[0]) if previous is not None and raws[0] is not None else None
        counts = raws[1:] if previous is not None else raws
        return record, sum(int(c) for c in counts if c is not None)

    async def _items(self, ids: Sequence[str], client: str | None) -> dict[str, Any]:
        """The stored items of these ids that exist, by id."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        raws = await self._call("load", self._redis.mget([self._item_key(client, i) for i in unique]))
        return {i: orjson.loads(raw) for i, raw in zip(unique, raws, strict=True) if raw is not None}

    # A finished response.

    async def save(self, response: Mapping[str, Any], resolved: Resolved, client: str | None) -> None:
        """Keep a finished response: its new input items, its output items, and its record naming
        them all; the items it continues live on as long as it does."""
        ttl = self._ttl
        output = list(response.get("output", ()))
        record = orjson.dumps(
            {
                "input": resolved.ids,
                "output": [item["id"] for item in output],
                "response": {k: v for k, v in response.items() if k != "output"},
            }
        )
        writes = [(self._item_key(client, i), raw) for i, raw in resolved.new]
        writes += [(self._item_key(client, item["id"]), orjson.dumps(item)) for item in output]
        writes.append((self._response_key(client, response["id"]), record))
        written = sum(len(raw) for _, raw in writes)
        current, _ = self._bytes_keys(client)
        fresh = {i for i, _ in resolved.new}
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self._redis.pipeline(transaction=False)
                for key, raw in writes:
                    pipe.set(key, raw, ex=ttl)
                for item_id in dict.fromkeys(resolved.ids):
                    if item_id not in fresh:
                        pipe.expire(self._item_key(client, item_id), ttl, gt=True)
                pipe.incrby(current, written)
                pipe.expire(current, 2 * ttl)
                await pipe.execute()
        except FAILURES as exc:
            # The answer has been given; only what chains to it later will miss it.
            self._failed("store", exc)

    # GET and DELETE.

    async def response(self, response_id: str, client: str | None) -> dict[str, Any]:
        """The stored response, as the client got it."""
        record = await self._call("load", self._redis.get(self._response_key(client, response_id)))
        if record is None:
            raise _no_such_response(response_id, "response_id")
        stored = orjson.loads(record)
        items = await self._items(stored["output"], client)
        return {**stored["response"], "output": [items[i] for i in stored["output"] if i in items]}

    async def delete(self, response_id: str, client: str | None) -> None:
        key = self._response_key(client, response_id)
        record = await self._call("load", self._redis.get(key))
        if record is None:
            raise _no_such_response(response_id, "response_id")
        outputs = orjson.loads(record)["output"]
        await self._call("delete", self._redis.delete(key, *(self._item_key(client, i) for i in outputs)))

    async def close(self) -> None:
        await self._redis.aclose()


def store_for(config: GatewayConfig, recorder: Any, previous: ResponseStore | None) -> ResponseStore | None:
    """The store a config asks for; a reload keeps the one it has when nothing it depends on changed."""
    redis, settings = config.state.redis, config.responses
    if redis is None or settings.store_ttl_seconds is None:
        return None
    if previous is not None and previous.redis_config == redis and previous.settings == settings:
        return previous
    return ResponseStore(redis, settings, recorder)


def _references(items: Sequence[Any]) -> dict[int, str]:
    """The ids `item_reference` items name, by their place in the input; a 400 for one without an id."""
    found: dict[int, str] = {}
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "item_reference":
            reference = item.get("id")
            if not isinstance(reference, str) or not reference:
                raise invalid_request(
                    f"input[{index}] is an item_reference without an 'id' string", f"input[{index}].id"
                )
            found[index] = reference
    return found


def _encoded(item: Any, index: int) -> bytes:
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError:
        # orjson writes at most 254 levels; what it reads (1,024) may be deeper.
        raise invalid_request(
            f"input[{index}] is nested too deeply to be stored; flatten it or send it with store: false",
            f"input[{index}]",
        ) from None


def _no_such_response(response_id: str, param: str) -> GatewayError:
    return GatewayError(
        404, f"No stored response {echo(response_id)}: it never was, it expired, or it is another client's", param
    )
