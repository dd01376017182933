"""Rate limits and budgets, per pod or shared by every replica through Redis.

Admission reads where a client stands and refuses it past a limit (429 naming which, and when it
resets) before anything goes upstream. What a request used is charged after its answer, so a
stream that crosses a budget finishes and the next request is refused.

Shared (state.redis): one Lua script, a single round trip bounded by `timeout_ms`, counts the
request, reads the token and budget counters and leases this replica the client's next requests
(gateway/spend/credit.py), which are then admitted with no round trip; charges go after the
answer, merged, with the next round trip (or within 250 ms on their own), and nobody waits for
them. Windows are fixed: the minute, the UTC day and the UTC month, each key expiring after its
window, so budgets survive gateway restarts.
When Redis fails or is slow, `on_error` decides (serve, or 503), every failure is counted, and
the next request tries again: redis-py reconnects by itself.

Per pod (no Redis): the clients' token buckets for the per-minute limits, and budget counters in
this process, carried across reloads; N replicas allow N times as much.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import redis.exceptions

from foundry_common.timestamps import utc_text
from gateway.config import BudgetConfig, RedisConfig
from gateway.errors import Dialect, GatewayError
from gateway.inbound.clients import Client
from gateway.shared_state import FAILURES, FailureReport, redis_client
from gateway.spend.credit import LEASE_SECONDS, Credit, Reserve, lease_size
from gateway.spend.prices import Price, Tokens, cost_usd

MICRO = 1_000_000  # budgets are counted in micro-dollars: integers Redis adds atomically


@dataclass(frozen=True, slots=True)
class Windows:
    """The fixed windows `now` falls in: their keys and the epoch seconds at which each ends."""

    minute: int
    minute_end: float
    day: str
    day_end: float
    month: str
    month_end: float
    minute_key: bytes = b""  # the three as the scripts take them, encoded once a minute
    day_key: bytes = b""
    month_key: bytes = b""

    @classmethod
    def at(cls, now: float) -> Windows:
        """The windows of `now`; the same object until the minute turns (a request pays a comparison)."""
        last = _windows_memo[0]
        if last is not None and last.minute * 60 <= now < last.minute_end:
            return last
        windows = cls.compute(now)
        _windows_memo[0] = windows
        return windows

    @classmethod
    def compute(cls, now: float) -> Windows:
        moment = datetime.fromtimestamp(now, UTC)
        day_start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        next_month = (day_start.replace(day=28) + (day_start.replace(day=28) - day_start.replace(day=1))).replace(day=1)
        minute = int(now // 60)
        day, month = day_start.strftime("%Y%m%d"), day_start.strftime("%Y%m")
        return cls(
            minute,
            (minute + 1) * 60.0,
            day,
            day_start.timestamp() + 86400,
            month,
            next_month.timestamp(),
            str(minute).encode(),
            day.encode(),
            month.encode(),
        )


_windows_memo: list[Windows | None] = [None]


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a request may cost at most, as far as admission can tell: its input estimate plus its
    max_tokens, priced at its route's dearest target. Held against the client's budgets from
    admission until the request settles, so concurrent requests cannot all spend the same room."""

    tokens: int = 0
    usd: float = 0.0

    def held_for(self, client: Client) -> bool:
        """Whether admission holds this against the client's budgets: only a budget has room to hold."""
        return client.budget is not None and (self.tokens > 0 or self.usd > 0)


NO_RESERVATION = Reservation()


def reservation(input_tokens: int, output_tokens: int, prices: Sequence[Price | None]) -> Reservation:
    """The most a request may cost: its tokens, at the dearest of the prices it may be served at."""
    tokens = Tokens(input_tokens, output_tokens, 0, 0, 0)
    return Reservation(input_tokens + output_tokens, max((cost_usd(p, tokens) for p in prices if p), default=0.0))


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a client stands after admission, for the headers its SDK reads; and what admission
    reserved against its budgets, in which windows, for the settlement."""

    requests_remaining: int | None = None
    tokens_remaining: int | None = None
    reset_seconds: float = 0.0  # both per-minute windows turn together
    reserved: Reservation = NO_RESERVATION
    windows: Windows | None = None

    def headers(self, dialect: Dialect) -> dict[str, str]:
        out: dict[str, str] = {}
        reset = max(0.0, self.reset_seconds)
        if dialect is Dialect.ANTHROPIC:
            at = _iso(math.ceil(time.time() + reset))
            if self.requests_remaining is not None:
                out["anthropic-ratelimit-requests-remaining"] = str(self.requests_remaining)
                out["anthropic-ratelimit-requests-reset"] = at
            if self.tokens_remaining is not None:
                out["anthropic-ratelimit-tokens-remaining"] = str(self.tokens_remaining)
                out["anthropic-ratelimit-tokens-reset"] = at
            return out
        if self.requests_remaining is not None:
            out["x-ratelimit-remaining-requests"] = str(self.requests_remaining)
            out["x-ratelimit-reset-requests"] = f"{reset:.0f}s"
        if self.tokens_remaining is not None:
            out["x-ratelimit-remaining-tokens"] = str(self.tokens_remaining)
            out["x-ratelimit-reset-tokens"] = f"{reset:.0f}s"
        return out


@functools.lru_cache(maxsize=8)
def _iso(seconds: int) -> str:
    """Remembered, since a window's requests all reset at the same second."""
    return utc_text(seconds)


def _refused(message: str, reset: float) -> GatewayError:
    wait = max(1, math.ceil(reset))
    return GatewayError(429, message, error_type="rate_limit_error", headers={"retry-after": str(wait)})


def over_rate(client: Client, limit: str, value: int, reset: float, shared: bool) -> GatewayError:
    where = "across all replicas" if shared else "on this gateway pod"
    return _refused(
        f"Client {client.name!r} is over its rate limit ({limit}: {value}) {where}; "
        f"retry in {max(1, math.ceil(reset))} s",
        reset,
    )


def over_budget(client: Client, budget: str, used: float, limit: float, ends: float, now: float) -> GatewayError:
    money = budget.startswith("usd")
    spent = f"${used:,.2f} of ${limit:,.2f}" if money else f"{used:,.0f} of {limit:,.0f} tokens"
    resets = utc_text(ends)
    return _refused(f"Client {client.name!r} has used its {budget} budget ({spent}); it resets at {resets}", ends - now)


# (name, config field, window) of each budget, in the order the script reads them.
BUDGETS = (
    ("usd_per_day", "day"),
    ("usd_per_month", "month"),
    ("tokens_per_day", "day"),
    ("tokens_per_month", "month"),
)


def settlement_windows(standing: Standing | None, clock: Callable[[], float]) -> Windows:
    """Where a request's use is counted: the windows its reservation was made in (a day that turned
    while it ran still gets its refund), else the current ones."""
    if standing is not None and standing.windows is not None:
        return standing.windows
    return Windows.at(clock())


def _budget_limits(budget: BudgetConfig | None) -> list[float | None]:
    if budget is None:
        return [None] * len(BUDGETS)
    return [getattr(budget, name) for name, _ in BUDGETS]


class Limiter(Protocol):
    shared: bool

    async def admit(self, client: Client, reserve: Reservation = NO_RESERVATION) -> Standing:
        """Where the client stands, or a GatewayError (429 past a limit; 503 when shared state fails
        under deny). Admitted, `reserve` is counted against its budgets until `settle`."""
        ...

    def settle(self, client: Client, standing: Standing | None, tokens: int, usd: float) -> None:
        """Count what a request used in place of what it reserved; never waits."""
        ...

    async def close(self) -> None: ...


class LocalLimiter:
    """Per pod: the clients' token buckets, and budgets counted in this process."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._spent: dict[tuple[str, str, str], float] = {}  # (client, budget kind, window) -> usd or tokens

    async def admit(self, client: Client, reserve: Reservation = NO_RESERVATION) -> Standing:
        for bucket, name, value in (
            (client.requests, "requests_per_minute", client.requests_per_minute),
            (client.tokens, "tokens_per_minute", client.tokens_per_minute),
        ):
            wait = bucket.wait(1.0) if bucket is not None else 0.0
            if wait > 0:
                raise over_rate(client, name, value or 0, wait, shared=False)
        if client.budget is not None:
            now = self._clock()
            windows = Windows.at(now)
            for (name, window), limit in zip(BUDGETS, _budget_limits(client.budget), strict=True):
                key = windows.day if window == "day" else windows.month
                used = self._spent.get((client.name, name, key), 0.0)
                if limit is not None and used >= limit:
                    ends = windows.day_end if window == "day" else windows.month_end
                    raise over_budget(client, name, used, limit, ends, now)
        if client.requests is not None:
            client.requests.take(1)
        reserved_in: Windows | None = None
        if reserve.held_for(client):
            reserved_in = Windows.at(self._clock())
            self._add_to_budgets(client, reserved_in, reserve.tokens, reserve.usd)
        return Standing(
            int(client.requests.level) if client.requests is not None else None,
            max(0, int(client.tokens.level)) if client.tokens is not None else None,
            _full_in(client),
            reserve if reserved_in is not None else NO_RESERVATION,
            reserved_in,
        )

    def settle(self, client: Client, standing: Standing | None, tokens: int, usd: float) -> None:
        if client.tokens is not None and tokens > 0:
            client.tokens.take(tokens)
        if client.budget is None:
            return
        reserved = standing.reserved if standing is not None else NO_RESERVATION
        windows = settlement_windows(standing, self._clock)
        self._add_to_budgets(client, windows, tokens - reserved.tokens, usd - reserved.usd)

    def _add_to_budgets(self, client: Client, windows: Windows, tokens: int, usd: float) -> None:
        for name, window in BUDGETS:
            key = (client.name, name, windows.day if window == "day" else windows.month)
            self._spent[key] = self._spent.get(key, 0.0) + (usd if name.startswith("usd") else tokens)
        if len(self._spent) > 4 * len(BUDGETS) * 1024:  # windows gone by: keep only the current ones
            current = {windows.day, windows.month}
            self._spent = {k: v for k, v in self._spent.items() if k[2] in current}

    async def close(self) -> None:
        return None


def _full_in(client: Client) -> float:
    """Seconds until the client's per-minute buckets are full again."""
    waits = [0.0]
    for bucket in (client.requests, client.tokens):
        if bucket is not None:
            waits.append(max(0.0, (bucket.capacity - bucket.level) / (bucket.capacity / 60.0)))
    return max(waits)


# Adds an amount (a charge, a reservation, or a negative settlement) to a counter and sets when
# it expires; nothing for 0. Both scripts begin with it.
_ADD = """
local function add(key, amount, expires)
  if tonumber(amount) ~= 0 then
    redis.call('INCRBY', key, amount)
    redis.call('EXPIREAT', key, expires)
  end
end
"""

# One key named, the client's prefix (its hash tag keeps every key the script builds from it on
# one Redis Cluster slot), and few arguments: a request's share of a round trip is mostly
# redis-py packing them. ARGV: the minute, the UTC day, the UTC month, the limits as one string
# ("requests tokens usd_day usd_month tokens_day tokens_month", -1 for none, dollars in
# micro-dollars), the minute key's time to live; then what admission reserves against the budgets
# for each request (tokens, micro-dollars), when the day's and the month's counters expire (unix
# seconds), how many requests to lease (gateway/spend/credit.py), and how many of this minute's a
# replica gives back from its last credit. Returns {refused (0: admitted; 1 requests, 2 tokens, 3..
# the budgets), requests, tokens, budgets..., requests granted}.
_ADMIT = (
    _ADD
    + """
local b = KEYS[1]
local limits = {}
for v in string.gmatch(ARGV[4], '%S+') do limits[#limits + 1] = tonumber(v) end
local back = tonumber(ARGV[11])
if back > 0 and limits[1] >= 0 then redis.call('DECRBY', b .. 'requests:' .. ARGV[1], back) end
local used = redis.call('MGET', b .. 'tokens:' .. ARGV[1], b .. 'usd:' .. ARGV[2], b .. 'usd:' .. ARGV[3],
                        b .. 'tokens:' .. ARGV[2], b .. 'tokens:' .. ARGV[3])
local out = {0, 0}
for i = 1, 5 do
  local value = tonumber(used[i]) or 0
  out[i + 2] = value
  if limits[i + 1] >= 0 and value >= limits[i + 1] and out[1] == 0 then out[1] = i + 1 end
end
out[8] = 0
if out[1] ~= 0 then return out end
local granted = tonumber(ARGV[10])
if limits[1] >= 0 then
  local key = b .. 'requests:' .. ARGV[1]
  local count = redis.call('INCRBY', key, granted)
  if count == granted then redis.call('EXPIRE', key, ARGV[5]) end
  if count > limits[1] then
    local over = math.min(granted, count - limits[1])
    redis.call('DECRBY', key, over)
    count, granted = count - over, granted - over
  end
  out[2] = count
  if granted <= 0 then out[1] = 1; return out end
end
add(b .. 'tokens:' .. ARGV[2], ARGV[6] * granted, ARGV[8])
add(b .. 'tokens:' .. ARGV[3], ARGV[6] * granted, ARGV[9])
add(b .. 'usd:' .. ARGV[2], ARGV[7] * granted, ARGV[8])
add(b .. 'usd:' .. ARGV[3], ARGV[7] * granted, ARGV[9])
out[8] = granted
return out
"""
)

# KEYS: the client's prefix. ARGV: minute, day, month, the minute's tokens, the budgets' tokens and
# micro-dollars (what was used less what was reserved: negative refunds a reservation), when the
# minute's, the day's and the month's counters expire (unix seconds), the batch's id (a batch sent
# again after a timeout that Redis had applied anyway is applied once), and the minute's requests
# a replica's credit gives back unused.
_CHARGE = (
    _ADD
    + """
local b = KEYS[1]
if not redis.call('SET', b .. 'charge:' .. ARGV[10], '1', 'NX', 'EX', 600) then return 0 end
if tonumber(ARGV[11]) > 0 and redis.call('EXISTS', b .. 'requests:' .. ARGV[1]) == 1 then
  redis.call('DECRBY', b .. 'requests:' .. ARGV[1], ARGV[11])
end
add(b .. 'tokens:' .. ARGV[1], ARGV[4], ARGV[7])
add(b .. 'tokens:' .. ARGV[2], ARGV[5], ARGV[8])
add(b .. 'tokens:' .. ARGV[3], ARGV[5], ARGV[9])
add(b .. 'usd:' .. ARGV[2], ARGV[6], ARGV[8])
add(b .. 'usd:' .. ARGV[3], ARGV[6], ARGV[9])
return 1
"""
)

Call = tuple[Any, list[Any], list[Any]]  # a registered script, its keys, its arguments

# The longest a charge waits for an admission to ride with before it is written on its own.
# As stale as a lease may be (gateway/spend/credit.py): a busy client's charges go a few hundred at a time.
CHARGE_DELAY_SECONDS = 0.25


class RedisLimiter:
    """Every replica's counters in one Redis.

    A request waits for one round trip, and requests that arrive together share it: admissions
    queued in the same turn of the event loop go out as one pipeline. Charges are merged by key
    and ride in front of the next admissions' pipeline (so those admissions already see them), or
    go on their own after CHARGE_DELAY_SECONDS without one; a failed write is kept and tried again.
    """

    shared = True

    def __init__(self, config: RedisConfig, recorder: Any, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        timeout = config.timeout_ms / 1000
        self._redis = redis_client(config)
        self._failed = FailureReport(recorder)
        self._admit = self._redis.register_script(_ADMIT)
        self._charge = self._redis.register_script(_CHARGE)
        self._timeout = timeout
        self._prefix = config.key_prefix
        self._recorder = recorder
        self._clock = clock
        self._queued: list[tuple[list[Any], list[Any], asyncio.Future[list[Any]]]] = []
        # client -> minute -> [windows, the minute's tokens, the budgets' tokens, micro-dollars, expiries...]:
        # one script call a client and minute, its keys on one cluster slot
        self._charges: dict[str, dict[bytes, list[Any]]] = {}
        self._retries: list[Call] = []  # charge calls Redis did not answer, sent again as they were
        self._tasks: set[asyncio.Task[None]] = set()  # kept until done: the loop holds tasks only weakly
        self._charge_timer: asyncio.TimerHandle | None = None
        self._prefixes: dict[str, bytes] = {}
        self._limits: dict[str, tuple[Client, bytes]] = {}
        self._credits: dict[str, Credit] = {}  # each client's lease on this replica
        self._leasing: dict[str, asyncio.Future[None]] = {}  # a client's lease round trip in flight

    def _prefix_of(self, client: str) -> bytes:
        """The client's key prefix; {name} is a hash tag: one cluster slot for all its keys."""
        prefix = self._prefixes.get(client)
        if prefix is None:
            if len(self._prefixes) > 4096:  # clients are configured: this bounds a misconfiguration, not traffic
                self._prefixes.clear()
            prefix = self._prefixes[client] = f"{self._prefix}{{{client}}}:".encode()
        return prefix

    def _limits_of(self, client: Client) -> bytes:
        """The client's limits as the admission script reads them, made once per client object."""
        cached = self._limits.get(client.name)
        if cached is not None and cached[0] is client:
            return cached[1]
        budgets = _budget_limits(client.budget)
        values = [client.requests_per_minute, client.tokens_per_minute,
                  *(round(b * MICRO) if b is not None and i < 2 else b for i, b in enumerate(budgets))]  # fmt: skip
        packed = " ".join("-1" if v is None else str(int(v)) for v in values).encode()
        self._limits[client.name] = (client, packed)
        return packed

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, calls: list[Call]) -> list[Any]:
        """Run each (script, keys, args) by its hash; one result per call, an exception where that call
        failed. One alone goes as a command, several as one pipeline (a pipeline of registered scripts
        would first ask Redis whether each is loaded, a round trip of its own). Calls Redis answered
        NOSCRIPT are sent again, once the scripts are loaded, and only those: the others have run,
        and running an admission twice would count its request twice. A failure of the whole round
        trip (timeout, connection) raises."""
        results = await self._send(calls)
        again = [i for i, r in enumerate(results) if isinstance(r, redis.exceptions.NoScriptError)]
        if again:
            for script in {id(calls[i][0]): calls[i][0] for i in again}.values():
                await self._redis.script_load(script.script)
            for i, result in zip(again, await self._send([calls[i] for i in again]), strict=True):
                results[i] = result
        return results

    async def _send(self, calls: list[Call]) -> list[Any]:
        if len(calls) == 1:
            script, keys, args = calls[0]
            try:
                return [await self._redis.evalsha(script.sha, len(keys), *keys, *args)]
            except redis.exceptions.ResponseError as exc:  # NOSCRIPT, or the script's own error
                return [exc]
        pipe = self._redis.pipeline(transaction=False)
        for script, keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    def _take_charges(self) -> list[Call]:
        """The pending charges as script calls, each batch with an id of its own; none pending after."""
        charges, self._charges = self._charges, {}
        retries, self._retries = self._retries, []
        if self._charge_timer is not None:
            self._charge_timer.cancel()
            self._charge_timer = None
        calls = retries
        for client, by_minute in charges.items():
            prefix = self._prefix_of(client)
            for windows, minute_tokens, tokens, micro, requests, *expires in by_minute.values():
                args = [windows.minute_key, windows.day_key, windows.month_key, minute_tokens, tokens, micro,
                        *expires, os.urandom(8).hex(), requests]  # fmt: skip
                calls.append((self._charge, [prefix], args))
        return calls

    def _charges_done(self, calls: list[Call], results: list[Any] | BaseException) -> None:
        """A charge Redis did not answer is sent again as it was, id and all (Redis may have applied it:
        the id makes that harmless); one Redis refused is dropped, counted and logged, so it cannot
        poison every batch after it."""
        for call, result in zip(calls, results if isinstance(results, list) else [results] * len(calls), strict=True):
            if isinstance(result, redis.exceptions.ResponseError):
                self._failed("charge_refused", result)
            elif isinstance(result, BaseException):
                self._retries.append(call)
        if self._retries:
            self._failed("charge", results if isinstance(results, BaseException) else TimeoutError())
            self._schedule_charges(1.0)

    async def _send_admissions(self) -> None:
        queued, self._queued = self._queued, []
        # Pending charges go first in the same pipeline: no round trip of their own, and these
        # admissions already see them.
        calls = self._take_charges()
        try:
            async with asyncio.timeout(self._timeout):
                results = await self._run([*calls, *((self._admit, keys, args) for keys, args, _ in queued)])
        except BaseException as exc:  # every waiter hears of it, whatever it was
            self._charges_done(calls, exc)
            for _, _, waiter in queued:
                if not waiter.done():
                    waiter.set_exception(exc if isinstance(exc, Exception) else TimeoutError())
            if not isinstance(exc, Exception):
                raise
            return
        self._charges_done(calls, results[: len(calls)])
        for (_, _, waiter), result in zip(queued, results[len(calls) :], strict=True):
            if not waiter.done():
                if isinstance(result, Exception):
                    waiter.set_exception(result)
                else:
                    waiter.set_result(result)

    async def admit(self, client: Client, reserve: Reservation = NO_RESERVATION) -> Standing:
        now = self._clock()
        windows = Windows.at(now)
        reserving = reserve.held_for(client)
        if not reserving:
            reserve = NO_RESERVATION
        micro = round(reserve.usd * MICRO)
        while True:
            credit = self._credits.get(client.name)
            if credit is not None and credit.covers(windows, now, reserve.tokens, micro):
                credit.take(reserve.tokens, micro)  # no round trip: this replica's lease covers it
                return self._standing(client, credit, windows, now, reserve, reserving)
            leasing = self._leasing.get(client.name)
            if leasing is None:
                break
            # Another request of this client is leasing now: its lease is sized for them all.
            await asyncio.shield(leasing)
        self._leasing[client.name] = done = asyncio.get_running_loop().create_future()
        try:
            credit = await self._new_credit(client, credit, windows, now, reserve, micro)
        finally:
            if self._leasing.get(client.name) is done:
                del self._leasing[client.name]
            done.set_result(None)
        if credit is None:
            return Standing()  # nothing counted, nothing reserved: the settlement charges what was used
        return self._standing(client, credit, windows, now, reserve, reserving)

    async def _new_credit(
        self,
        client: Client,
        last: Credit | None,
        windows: Windows,
        now: float,
        reserve: Reservation,
        micro: int,
    ) -> Credit | None:
        """One lease round trip; what the last credit left goes back with it. The last credit stays in
        place, empty, until the new one comes: requests meanwhile read its pace, and wait for this."""
        size = lease_size(client, last, now, reserve.tokens, micro)
        back = 0
        if last is not None:
            back = self._give_back(client.name, last, inline=last.windows is windows)
        result = await self._lease(client, windows, reserve, micro, size, back)
        if not result:
            return None  # Redis failed, and on_error allows
        refused, requests, tokens, *spent, granted = (int(v) for v in result)
        if refused:
            raise self._refusal(client, refused, spent, windows, now)
        held = Reserve(reserve.tokens * (granted - 1), micro * (granted - 1))
        credit = Credit(windows, now, now + LEASE_SECONDS, granted - 1, held, requests, tokens, 1)
        self._credits[client.name] = credit
        if granted > 1:
            asyncio.get_running_loop().call_later(LEASE_SECONDS, self._expire, client.name, credit)
        return credit

    @staticmethod
    def _standing(
        client: Client, credit: Credit, windows: Windows, now: float, reserve: Reservation, reserving: bool
    ) -> Standing:
        rpm, tpm = client.requests_per_minute, client.tokens_per_minute
        return Standing(
            max(0, rpm - credit.count + credit.requests) if rpm is not None else None,
            max(0, tpm - credit.minute_tokens) if tpm is not None else None,
            windows.minute_end - now,
            reserve,
            windows if reserving else None,
        )

    async def _lease(
        self, client: Client, windows: Windows, reserve: Reservation, micro: int, size: int, back: int
    ) -> list[Any] | None:
        """The admission round trip: Redis's answer, or None when it failed and on_error allows."""
        args = [windows.minute_key, windows.day_key, windows.month_key, self._limits_of(client), b"120",
                reserve.tokens, micro, *self._expiries(windows)[1:], size, back]  # fmt: skip
        waiter: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if not self._queued:  # the first of this turn sends the lot at the next one
            asyncio.get_running_loop().call_soon(self._spawn, self._send_admissions())
        self._queued.append(([self._prefix_of(client.name)], args, waiter))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                result = await waiter
        except FAILURES as exc:
            self._failed("admit", exc)
            if self.config.on_error == "deny":
                raise GatewayError(
                    503,
                    f"The shared limits store (Redis) did not answer within {self.config.timeout_ms} ms, and this "
                    "gateway refuses requests then (state.redis.on_error: deny); retry shortly",
                    error_type="api_error",
                    headers={"retry-after": "1"},
                ) from None
            return None
        finally:
            self._recorder.shared_state_latency(time.perf_counter() - started)
        return result

    @staticmethod
    def _refusal(client: Client, refused: int, spent: list[int], windows: Windows, now: float) -> GatewayError:
        reset = windows.minute_end - now
        if refused == 1:
            return over_rate(client, "requests_per_minute", client.requests_per_minute or 0, reset, shared=True)
        if refused == 2:
            return over_rate(client, "tokens_per_minute", client.tokens_per_minute or 0, reset, shared=True)
        name, window = BUDGETS[refused - 3]
        used = spent[refused - 3] / MICRO if name.startswith("usd") else spent[refused - 3]
        limit = _budget_limits(client.budget)[refused - 3] or 0
        return over_budget(client, name, used, limit, windows.day_end if window == "day" else windows.month_end, now)

    @staticmethod
    def _expiries(windows: Windows) -> list[int]:
        # A day's and a month's counters live a window longer than their window: a clock a little
        # off between replicas must not lose a charge.
        return [int(windows.minute_end + 60), int(windows.day_end + 86400), int(windows.month_end + 86400)]

    def settle(self, client: Client, standing: Standing | None, tokens: int, usd: float) -> None:
        reserved = standing.reserved if standing is not None else NO_RESERVATION
        budget_tokens, micro = tokens - reserved.tokens, round(usd * MICRO) - round(reserved.usd * MICRO)
        if tokens <= 0 and budget_tokens == 0 and micro == 0:
            return
        pending = self._pending(client.name, settlement_windows(standing, self._clock))
        pending[1] += max(0, tokens)
        pending[2] += budget_tokens
        pending[3] += micro
        self._schedule_charges()

    def _pending(self, client: str, windows: Windows) -> list[Any]:
        """The client's pending charge in `windows`: [windows, the minute's tokens, the budgets' tokens,
        micro-dollars, requests given back, expiries...]. One a client and window: what comes before
        the write is added up."""
        pending = self._charges.setdefault(client, {}).get(windows.minute_key)
        if pending is None:
            pending = self._charges[client][windows.minute_key] = [windows, 0, 0, 0, 0, *self._expiries(windows)]
        return pending

    def _give_back(self, client: str, credit: Credit, inline: bool) -> int:
        """What `credit` holds unused goes back to Redis: its budget reservation with the pending
        charges; its requests too, or (`inline`, its minute still current) to the caller, who sends
        them with its next lease."""
        pending = (
            self._pending(client, credit.windows)
            if credit.requests or credit.held.tokens or credit.held.micro
            else None
        )
        if pending is None:
            return 0
        pending[2] -= credit.held.tokens
        pending[3] -= credit.held.micro
        requests, credit.requests, credit.held = credit.requests, 0, Reserve(0, 0)
        if not inline:
            pending[4] += requests
            requests = 0
        self._schedule_charges()
        return requests

    def _expire(self, client: str, credit: Credit) -> None:
        """A credit its client did not use up in time: what is left goes back."""
        if self._credits.get(client) is credit:
            del self._credits[client]
            self._give_back(client, credit, inline=False)

    def _schedule_charges(self, delay: float = CHARGE_DELAY_SECONDS) -> None:
        # Written with the next admission's round trip, or on their own after a moment without one:
        # other replicas see a charge within CHARGE_DELAY_SECONDS either way.
        if self._charge_timer is None and (self._charges or self._retries):
            self._charge_timer = asyncio.get_running_loop().call_later(delay, self._spawn_charges)

    def _spawn_charges(self) -> None:
        self._charge_timer = None
        self._spawn(self._send_charges())

    async def _send_charges(self) -> None:
        calls = self._take_charges()
        if not calls:
            return
        try:
            async with asyncio.timeout(max(self._timeout, 1.0)):
                results = await self._run(calls)
        except FAILURES as exc:
            self._charges_done(calls, exc)
            return
        self._charges_done(calls, results)

    async def close(self) -> None:
        for client, credit in list(self._credits.items()):
            self._give_back(client, credit, inline=False)  # other replicas may spend what this one held
        self._credits.clear()
        if self._charges or self._retries:
            await self._send_charges()  # what is pending goes before the pod does
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._timeout + 1)
        await self._redis.aclose()


def limiter_for(config: RedisConfig | None, recorder: Any, previous: Limiter | None) -> Limiter:
    """The limiter for a config; a reload keeps the one it has when the shared state is unchanged."""
    if config is None:
        return previous if isinstance(previous, LocalLimiter) else LocalLimiter()
    if isinstance(previous, RedisLimiter) and previous.config == config:
        return previous
    return RedisLimiter(config, recorder)
