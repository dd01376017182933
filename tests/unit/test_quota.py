"""The quota pieces on a fake clock: pool meters, the fair queue, affinity and placement."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass

import pytest

from gateway.config import QuotaPoolConfig
from gateway.quota.affinity import SessionEntry, Sessions, cacheable_prefix, rendezvous, session_key
from gateway.quota.book import QuotaBook
from gateway.quota.fair_queue import FairQueue, Waiter
from gateway.quota.meter import Demand, PoolMeter
from gateway.quota.scheduler import Ask, QuotaRefused, RouteQuota
from gateway.quota.settlement import settle_quota


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool(name: str = "p", rpm: int | None = 60, itpm: int | None = 6000, otpm: int | None = 600,
         burst: float = 60) -> QuotaPoolConfig:  # fmt: skip
    return QuotaPoolConfig(
        name=name, requests_per_minute=rpm, input_tokens_per_minute=itpm, output_tokens_per_minute=otpm,
        burst_seconds=burst,
    )  # fmt: skip


# Meters.


def test_a_bucket_refills_continuously_and_says_how_long_until_a_demand_fits() -> None:
    clock = FakeClock()
    meter = PoolMeter(pool(), 1.0, clock)
    assert meter.wait(Demand(1, 6000, 600)) == 0  # full: a minute's worth
    meter.take(Demand(1, 6000, 600))
    assert meter.wait(Demand(1, 100, 10)) == pytest.approx(1.0)  # 100 input tokens refill in 1 s (100/s)
    clock.now += 0.5
    assert meter.wait(Demand(1, 100, 10)) == pytest.approx(0.5)
    clock.now += 0.5
    assert meter.wait(Demand(1, 100, 10)) == 0


def test_a_request_larger_than_the_bucket_fits_a_full_one_and_leaves_a_debt() -> None:
    clock = FakeClock()
    meter = PoolMeter(pool(otpm=600, burst=10), 1.0, clock)  # holds 100 output tokens
    assert meter.wait(Demand(1, 0, 4096)) == 0
    meter.take(Demand(1, 0, 4096))
    # 3996 tokens of debt plus the 100 the next such request needs, at 10 a second.
    assert meter.wait(Demand(1, 0, 4096)) == pytest.approx(409.6)


def test_a_correction_gives_back_what_the_estimate_overcharged_but_never_past_full() -> None:
    clock = FakeClock()
    meter = PoolMeter(pool(), 1.0, clock)
    meter.take(Demand(1, 3000, 600))
    assert meter.settle(Demand(1, 3000, 600), Demand(1, 3000, 50))  # answered 50 of 600
    assert meter.headroom()[2] == pytest.approx(550 / 600)
    assert meter.consumed == [1, 3000, 50] and meter.admitted == [1, 3000, 600]
    assert not meter.settle(Demand(1, 100, 0), Demand(1, 900, 0))  # an input estimate too low: the rest is taken
    meter.settle(Demand(0, 0, 10_000), Demand(0, 0, 0))
    assert meter.headroom()[2] == 1.0, "never past full"


def test_an_unexpected_429_empties_the_pool_pauses_it_and_slows_its_refill_for_a_while() -> None:
    clock = FakeClock()
    meter = PoolMeter(pool(), 1.0, clock)
    meter.throttled(retry_after=7)
    assert meter.headroom() == (0.0, 0.0, 0.0)
    assert meter.wait(Demand(1, 0, 0)) == pytest.approx(7)  # paused: nothing before Foundry's retry-after
    clock.now += 7
    assert meter.caution(clock.now) == pytest.approx(0.9 + 0.1 * 7 / 60)  # a tenth off, recovering over a minute
    meter.throttled(retry_after=None)
    assert meter.caution(clock.now) < 0.9  # again: it compounds
    clock.now += 60
    assert meter.caution(clock.now) == 1.0


def test_a_replica_alone_meters_its_share_of_the_pool() -> None:
    clock = FakeClock()
    meter = PoolMeter(pool(), 0.5, clock)  # two replicas
    assert meter.wait(Demand(30, 0, 0)) == 0
    meter.take(Demand(30, 0, 0))
    assert meter.wait(Demand(1, 0, 0)) == pytest.approx(2.0)  # half the rate: 1 request every 2 s


def test_an_unmetered_dimension_never_makes_a_request_wait() -> None:
    meter = PoolMeter(pool(rpm=None, otpm=None), 1.0, FakeClock())
    meter.take(Demand(10_000, 0, 10**9))
    assert meter.wait(Demand(1, 0, 10**9)) == 0
    assert meter.headroom() == (None, 1.0, None)


def test_foundry_counts_uncached_input_and_cache_writes_but_not_cache_reads() -> None:
    book = QuotaBook([pool()], 1, clock=FakeClock())
    meter = book.meters["p"]
    charge = book.charge(meter, Demand(1, 2000, 600))
    entry = SessionEntry(b"east")
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 5000}
    settle_quota(book, charge, {**usage, "output_tokens": 7}, entry, b"east")
    assert meter.consumed == [1, 310, 7]
    assert entry.cached_tokens == 5300, "its next turn is charged only what the target has not cached"
    settle_quota(book, charge, {**usage, "output_tokens": 7}, entry, b"east")
    assert meter.consumed == [1, 310, 7], "settled once"


def test_a_reload_keeps_what_a_pool_has_used() -> None:
    clock = FakeClock()
    book = QuotaBook([pool()], 1, clock=clock)
    book.meters["p"].take(Demand(60, 0, 0))
    again = QuotaBook([pool(rpm=120)], 1, previous=book, clock=clock)
    assert again.meters["p"] is book.meters["p"]
    assert again.meters["p"].headroom()[0] == 0.0


def test_leases_feed_a_shared_meter_and_ask_for_what_waiters_lack() -> None:
    clock = FakeClock()
    meter = PoolMeter(pool(), 1.0, clock)
    meter.granted((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))  # leases reach the shared pool: unleased tokens are dropped
    assert meter.leased and meter.headroom() == (0.0, 0.0, 0.0)
    assert meter.wait(Demand(1, 500, 100)) > 0  # no clock refill while leased
    meter.waiting(Demand(1, 500, 100), 1)
    asks, gives = meter.lease_terms(0.25, 0.5)
    assert asks[1] >= 500 and asks[2] >= 100 and gives == [0.0, 0.0, 0.0]
    meter.granted(tuple(asks), (0.0, 0.0, 0.0))
    assert meter.wait(Demand(1, 500, 100)) == 0
    meter.share_alone()  # Redis unreachable: its share from the clock again, from what it holds
    assert not meter.leased


# The fair queue.


def waiter(client: str, priority: str = "interactive", share: float = 1.0, tokens: int = 100) -> Waiter:
    loop = asyncio.new_event_loop()
    try:
        return Waiter(client, priority, share, Demand(1, tokens, 0), None, loop.create_future())  # type: ignore[arg-type]
    finally:
        loop.close()


def drain(queue: FairQueue) -> list[str]:
    served = []
    while (head := queue.head()) is not None:
        queue.pop(head)
        served.append(head.client)
    return served


def test_interactive_requests_are_served_before_batch_ones() -> None:
    queue = FairQueue(100)
    for w in (waiter("etl", "batch"), waiter("dev"), waiter("etl", "batch"), waiter("dev2")):
        queue.push(w)
    assert drain(queue) == ["dev", "dev2", "etl", "etl"]


def test_a_client_with_many_queued_requests_waits_behind_its_own_not_everyone_elses() -> None:
    queue = FairQueue(100)
    for _ in range(6):
        queue.push(waiter("greedy"))
    queue.push(waiter("polite"))
    queue.push(waiter("polite"))
    order = drain(queue)
    assert order.index("polite") <= 1 and order[:4].count("polite") == 2  # not after all six of greedy's


def test_a_share_of_two_is_served_twice_the_tokens_of_a_share_of_one() -> None:
    queue = FairQueue(1000)
    for _ in range(60):
        queue.push(waiter("big", share=2))
        queue.push(waiter("small", share=1))
    first = Counter(drain(queue)[:60])
    assert first["big"] == pytest.approx(40, abs=1) and first["small"] == pytest.approx(20, abs=1)


def test_a_waiter_that_leaves_is_gone_at_once_and_the_queue_is_bounded() -> None:
    queue = FairQueue(2)
    a, b = waiter("a"), waiter("b")
    queue.push(a)
    queue.push(b)
    assert queue.full and queue.ahead("interactive") == Demand(2, 200, 0)
    queue.remove(a)
    assert len(queue) == 1 and not queue.full and queue.ahead("interactive") == Demand(1, 100, 0)
    assert drain(queue) == ["b"]


def test_waiters_served_out_of_order_never_hide_the_ones_still_waiting() -> None:
    queue = FairQueue(1000)
    waiting = [waiter(f"dev-{i}") for i in range(40)]
    for w in waiting:
        queue.push(w)
    queue.push(waiter("etl", "batch"))
    for w in waiting[:39]:  # served from the front, one by one, as a scan of the queue does
        queue.pop(w)
    assert [w.client for w in queue.in_order(32)] == ["dev-39", "etl"]


def test_many_waiters_leaving_do_not_pile_up_in_the_queue() -> None:
    queue = FairQueue(10)
    for _ in range(10_000):
        w = waiter("x")
        queue.push(w)
        queue.remove(w)
    assert len(queue) == 0 and len(queue._heaps[0]) < 200


# Affinity.


@dataclass(eq=False)
class FakeTarget:
    name: str
    weight: int = 1
    pool: PoolMeter | None = None

    @property
    def affinity_id(self) -> bytes:
        return self.name.encode()


def test_rendezvous_spreads_sessions_by_weight_and_agrees_everywhere() -> None:
    targets = [FakeTarget("a", 1), FakeTarget("b", 2), FakeTarget("c", 1)]
    firsts = Counter(rendezvous(f"s{i}".encode(), targets)[0].name for i in range(8000))
    assert firsts["b"] / 8000 == pytest.approx(0.5, abs=0.03)
    assert firsts["a"] / 8000 == pytest.approx(0.25, abs=0.03)
    other_replica = [FakeTarget("c", 1), FakeTarget("a", 1), FakeTarget("b", 2)]  # same targets, another order
    assert all(rendezvous(k, targets)[0].name == rendezvous(k, other_replica)[0].name for k in (b"x", b"y", b"z"))


def test_removing_a_target_moves_only_its_own_sessions() -> None:
    targets = [FakeTarget("a"), FakeTarget("b"), FakeTarget("c")]
    keys = [f"s{i}".encode() for i in range(2000)]
    before = {k: rendezvous(k, targets)[0].name for k in keys}
    after = {k: rendezvous(k, targets[:2])[0].name for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] != "c")


def test_a_session_is_named_by_what_the_client_sends_first_then_by_its_cacheable_prefix() -> None:
    system = [{"type": "text", "text": "You are a coding agent", "cache_control": {"type": "ephemeral"}}]
    body = {"system": system, "messages": [{"role": "user", "content": "one"}]}
    later = {"system": system, "messages": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]}
    assert session_key(None, body, body) == session_key(None, later, later)  # the conversation grows; same session
    assert session_key("abc", body, body) != session_key(None, body, body)
    assert session_key("abc", {"prompt_cache_key": "zzz"}, body) == session_key("abc", {}, body)
    assert session_key(None, {"prompt_cache_key": "k"}, body) == session_key(None, {"user": "k"}, body)
    assert session_key(None, {"metadata": {"user_id": "u1"}}, body) != session_key(
        None, {"metadata": {"user_id": "u2"}}, body
    )
    assert session_key(None, {}, {"messages": []}) is None  # nothing to name it by
    long_key = session_key(None, {"prompt_cache_key": "k" * 10_000}, body)
    assert long_key is not None and len(long_key) == 16, "a long name is kept as its digest: the sessions stay bounded"
    tools = [{"name": "a", "cache_control": {"type": "ephemeral"}}, {"name": "b"}]
    assert cacheable_prefix({"tools": tools, "system": "x"}) == b'[{"name":"a","cache_control":{"type":"ephemeral"}}]'


def test_sessions_are_bounded() -> None:
    sessions = Sessions(kept=3)
    for key in (b"a", b"b", b"c", b"d"):
        sessions.add(key, b"t")
    assert len(sessions) == 3 and sessions.get(b"a") is None


# Placement.


def ask(session: bytes | None = b"s1", client: str = "dev", priority: str = "interactive", inp: int = 100,
        out: int = 10) -> Ask:  # fmt: skip
    return Ask(client, priority, 1.0, session, inp, out)  # type: ignore[arg-type]


def placement(
    clock: FakeClock, *pools: QuotaPoolConfig, max_wait: float = 30
) -> tuple[RouteQuota[FakeTarget], QuotaBook]:
    book = QuotaBook(pools, 1, clock=clock)
    return RouteQuota("claude", book, Sessions(), max_wait, 100, clock), book


def test_a_session_stays_on_its_target_and_is_charged_only_what_that_target_has_not_cached() -> None:
    clock = FakeClock()
    quota, book = placement(clock, pool("p1"), pool("p2"))
    targets = [FakeTarget("east", pool=book.meters["p1"]), FakeTarget("west", pool=book.meters["p2"])]
    first = quota.choose(ask(inp=3000), targets)
    assert first is not None and first.affinity == "new" and first.charge is not None
    assert first.charge.demand == Demand(1, 3000, 10)
    assert first.session is not None and first.session.target == first.target.affinity_id
    first.session.cached_tokens = 2900  # its answer read or wrote 2900 tokens in that target's cache (settlement)
    second = quota.choose(ask(inp=3100), targets)
    assert second is not None and second.target is first.target and second.affinity == "kept"
    assert second.charge is not None and second.charge.demand == Demand(1, 200, 10)


def test_a_session_whose_pool_is_empty_moves_to_the_pool_with_most_room_and_stays_there() -> None:
    clock = FakeClock()
    quota, book = placement(clock, pool("p1"), pool("p2"), pool("p3"))
    targets = [FakeTarget(n, pool=book.meters[p]) for n, p in (("a", "p1"), ("b", "p2"), ("c", "p3"))]
    home = rendezvous(b"s1", targets)[0]
    first = quota.choose(ask(), targets)
    assert first is not None and first.target is home and first.affinity == "new"
    assert home.pool is not None
    home.pool.take(Demand(60, 0, 0))  # its pool is spent
    others = [t for t in targets if t is not home]
    assert others[0].pool is not None
    others[0].pool.take(Demand(30, 0, 0))  # one other has half left, the third is full
    moved = quota.choose(ask(), targets)
    assert moved is not None and moved.affinity == "moved" and moved.target is others[1]
    clock.now += 120  # the home pool has refilled: the session stays where its cache now is
    again = quota.choose(ask(), targets)
    assert again is not None and again.target is others[1] and again.affinity == "kept"


def test_a_session_whose_target_is_unhealthy_is_counted_as_moved() -> None:
    clock = FakeClock()
    quota, _ = placement(clock)
    targets = [FakeTarget("a"), FakeTarget("b"), FakeTarget("c")]
    first = quota.choose(ask(), targets)
    assert first is not None and first.affinity == "new"
    healthy = [t for t in targets if t is not first.target]  # its target is cooling down: not in ready
    again = quota.choose(ask(), healthy)
    assert again is not None and again.affinity == "moved" and again.target is rendezvous(b"s1", healthy)[0]


def test_targets_in_an_empty_pool_are_not_tried_and_the_wait_is_computed_from_the_refill() -> None:
    clock = FakeClock()
    quota, book = placement(clock, pool("shared", rpm=60), max_wait=5)
    targets = [FakeTarget("east", pool=book.meters["shared"]), FakeTarget("west", pool=book.meters["shared"])]
    book.meters["shared"].take(Demand(70, 0, 0))  # 10 requests of debt: 11 s until one more fits
    assert quota.choose(ask(), targets) is None
    assert quota.wait(ask(), targets) == pytest.approx(11)

    async def refused() -> QuotaRefused:
        with pytest.raises(QuotaRefused) as info:
            await quota.place(ask(), targets, clock() + 5)
        return info.value

    exc = asyncio.run(refused())
    assert exc.status == 429 and exc.reason == "wait_bound" and exc.headers["retry-after"] == "11"
    assert "claude" in exc.message and "11 s" in exc.message


def test_waiters_are_served_as_the_pool_refills_interactive_first_then_fairly() -> None:
    clock = FakeClock()
    quota, book = placement(clock, pool("p", rpm=60, itpm=None, otpm=None))
    meter = book.meters["p"]
    targets = [FakeTarget("only", pool=meter)]
    meter.take(Demand(60, 0, 0))
    served: list[str] = []

    async def one(a: Ask) -> None:
        found = await quota.place(a, targets, clock() + 30)
        served.append(a.client)
        assert found.charge is not None

    async def scenario() -> None:
        tasks = [asyncio.create_task(one(ask(None, "etl", "batch"))) for _ in range(2)]
        tasks += [asyncio.create_task(one(ask(None, c))) for c in ("alice", "alice", "alice", "bob")]
        await asyncio.sleep(0)
        assert len(quota.queue) == 6 and not served
        for _ in range(6):
            clock.now += 1.0  # one request refills a second
            quota.serve()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert served[:4].count("bob") == 1 and served.index("bob") <= 1  # bob is not behind all of alice's
    assert served[4:] == ["etl", "etl"]


def test_a_client_that_leaves_the_queue_is_gone_at_once_and_a_late_grant_is_refunded() -> None:
    clock = FakeClock()
    quota, book = placement(clock, pool("p", rpm=60, itpm=None, otpm=None))
    meter = book.meters["p"]
    targets = [FakeTarget("only", pool=meter)]
    meter.take(Demand(60, 0, 0))

    async def scenario() -> None:
        task = asyncio.create_task(quota.place(ask(None), targets, clock() + 30))
        await asyncio.sleep(0)
        assert len(quota.queue) == 1
        task.cancel()  # its client disconnected
        await asyncio.gather(task, return_exceptions=True)
        assert len(quota.queue) == 0 and not book.wakers
        # Granted at the moment its client left: the charge goes back.
        task = asyncio.create_task(quota.place(ask(None), targets, clock() + 30))
        await asyncio.sleep(0)
        clock.now += 1
        quota.serve()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert meter.headroom()[0] == pytest.approx(1 / 60)  # the granted request came back


def test_a_full_queue_refuses_at_once() -> None:
    clock = FakeClock()
    book = QuotaBook([pool("p", rpm=60, itpm=None, otpm=None)], 1, clock=clock)
    quota = RouteQuota[FakeTarget]("claude", book, Sessions(), 30, 1, clock)
    targets = [FakeTarget("only", pool=book.meters["p"])]
    book.meters["p"].take(Demand(60, 0, 0))

    async def scenario() -> QuotaRefused:
        first = asyncio.create_task(quota.place(ask(None), targets, clock() + 30))
        await asyncio.sleep(0)
        with pytest.raises(QuotaRefused) as info:
            await quota.place(ask(None), targets, clock() + 30)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        return info.value

    exc = asyncio.run(scenario())
    assert exc.reason == "queue_full" and int(exc.headers["retry-after"]) == math.ceil(2.0)
