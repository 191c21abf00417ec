"""The notify section: signed order to webhook against its physical floor, raw Kafka producer
to read_committed consumer plus one aiohttp POST to a loopback receiver; both one in flight,
back to back (the maximum rate) and at `LOAD_SHARE` of that maximum, offered as an open loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from uuid import uuid4

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from clinical_testing.endpoints import ServerEndpoints

from bench.kafka_raw import measure_kafka_latency
from bench.load import percentile_ms
from bench.notify_latency import Receiver, loopback_url, subscribed_platform
from bench.options import Options, progress
from bench.report import Figure
from bench.topics import create_topic, delete_topics
from clinical_platform.clients.kafka import KafkaConnection, build_consumer, build_producer

LOAD_SHARE = 0.5
_CONCURRENCY = 16  # back to back: callers signing at once
_DELIVERY_WAIT_S = 10.0  # one in flight: a webhook this late is counted missing
_DRAIN_WAIT_S = 60.0
_PATIENT = "floor"

Act = Callable[[str], Awaitable[None]]
"""Send one key: sign an order, or produce one floor message."""


@dataclass(frozen=True)
class Run:
    """One way of offering the keys: latency per delivered key (send or answer → POST in)."""

    latencies_s: list[float]
    missing: int  # sent keys whose POST never came
    reordered: int  # POSTs after one of the same group whose key was sent later
    per_s: float  # offered (an open loop) or delivered (back to back)


async def run_section(options: Options, servers: ServerEndpoints) -> list[Figure]:
    count = options.notify_orders
    progress(f"notify: {count} signed orders to a webhook, one in flight, back to back, at load")
    async with subscribed_platform(servers, orders=3 * count) as (platform, receiver, placed):
        runs = [placed[:count], placed[count : 2 * count], placed[2 * count :]]
        one = await _drive(receiver, runs[0], platform.sign, in_flight=1)
        maximum = await _drive(receiver, runs[1], platform.sign, in_flight=_CONCURRENCY)
        load = await _drive(receiver, runs[2], platform.sign, per_s=LOAD_SHARE * maximum.per_s)
        duplicates = receiver.duplicates
    progress("floor: raw Kafka producer to read_committed consumer, then one POST")
    floor_one = await _floor(servers, count, per_s=None)
    floor_load = await _floor(servers, count, per_s=load.per_s)
    kafka = await measure_kafka_latency(servers.kafka_bootstrap_servers, messages=count)
    return _figures(one, maximum, load, floor_one, floor_load, kafka, duplicates)


async def _drive(
    receiver: Receiver, keys: Sequence[tuple[str, str]], act: Act, *,
    per_s: float | None = None, in_flight: int = 1, from_send: bool = False,
) -> Run:  # fmt: skip
    """Send `keys`, `per_s` a second (an open loop) or back to back `in_flight` at a time (with
    one, each waits for the previous key's POST); a group's keys one after another. Then wait
    for their POSTs and count what is missing or out of order within its group. A latency runs
    from the act's answer (SignOrder's), or from just before it (`from_send`: the floor)."""
    sent: dict[str, float] = {}
    sent_per_group: dict[str, list[str]] = {}
    locks = {group: asyncio.Lock() for _, group in keys}
    slots = asyncio.Semaphore(in_flight)
    started = time.perf_counter()

    async def send(index: int, key: str, group: str) -> None:
        if per_s is not None:
            await asyncio.sleep(max(0.0, started + index / per_s - time.perf_counter()))
        async with contextlib.AsyncExitStack() as held:
            if per_s is None:
                await held.enter_async_context(slots)
            async with locks[group]:
                began = time.perf_counter()
                await act(key)
                sent[key] = began if from_send else time.perf_counter()
                sent_per_group.setdefault(group, []).append(key)
            if per_s is None and in_flight == 1:
                await receiver.wait_for([key], _DELIVERY_WAIT_S)

    await asyncio.gather(*(send(i, key, group) for i, (key, group) in enumerate(keys)))
    await receiver.wait_for(list(sent), _DRAIN_WAIT_S)
    arrived = [key for key in sent if key in receiver.arrivals]
    last = max((receiver.arrivals[key] for key in arrived), default=started + 1)
    return Run(
        [receiver.arrivals[key] - sent[key] for key in arrived],
        missing=len(sent) - len(arrived),
        reordered=_reordered(sent_per_group, receiver.per_group),
        per_s=per_s or len(arrived) / (last - started),
    )


def _reordered(sent: dict[str, list[str]], received: dict[str, list[str]]) -> int:
    """Per group, POSTs that came after one whose key was sent later."""
    rank = {key: i for keys in sent.values() for i, key in enumerate(keys)}
    reordered = 0
    for group in sent:
        latest = -1
        for key in (k for k in received.get(group, []) if k in rank):
            reordered += rank[key] < latest
            latest = max(latest, rank[key])
    return reordered


async def _floor(servers: ServerEndpoints, count: int, *, per_s: float | None) -> Run:
    """The physical floor of one notification: `count` messages produced (acks=all,
    idempotent) to a new topic, read by a read_committed consumer and each POSTed, one at a
    time as a webhook worker does, to a loopback receiver; from just before the send."""
    topic = f"bench.raw.{uuid4().hex[:12]}"
    await create_topic(servers.kafka_bootstrap_servers, topic, partitions=1)
    kafka = KafkaConnection(servers.kafka_bootstrap_servers)
    producer, consumer = build_producer(kafka), build_consumer(kafka)
    try:
        async with AsyncExitStack() as stack:
            receiver = Receiver()
            receiver.url = await loopback_url(stack, receiver.handle)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            await producer.start()
            stack.push_async_callback(producer.stop)
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            await consumer.seek_to_end(partition)
            await consumer.position(partition)  # positioned before the first send
            forwarding = asyncio.create_task(_forward(consumer, session, receiver.url))
            stack.callback(forwarding.cancel)

            async def produce(key: str) -> None:
                await producer.send_and_wait(topic, key.encode())

            warmup = [(f"w{i}", _PATIENT) for i in range(20)]
            await _drive(receiver, warmup, produce)
            keys = [(str(i), _PATIENT) for i in range(count)]
            return await _drive(receiver, keys, produce, per_s=per_s, from_send=True)
    finally:
        await delete_topics(servers.kafka_bootstrap_servers, [topic])


async def _forward(consumer: AIOKafkaConsumer, session: aiohttp.ClientSession, url: str) -> None:
    while True:
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            for record in records:
                key = (record.value or b"").decode()
                body = json.dumps(
                    {"type": "floor", "data": {"order_id": key, "patient_id": _PATIENT}}
                )
                async with session.post(url, data=body, headers={"webhook-id": key}) as answer:
                    answer.raise_for_status()


def _figures(  # noqa: PLR0917 - one run's measurements, laid out as figures
    one: Run, maximum: Run, load: Run, floor_one: Run, floor_load: Run,
    kafka_s: list[float], duplicates: int,
) -> list[Figure]:  # fmt: skip
    p = percentile_ms
    at_load = f"at {load.per_s:.0f}/s offered ({LOAD_SHARE:.0%} of the maximum), open loop"

    return [
        Figure("notify_webhook_p50_ms", p(one.latencies_s, 50), "ms", 1,
               "SignOrder answered -> webhook in, one in flight"),
        Figure("notify_webhook_p99_ms", p(one.latencies_s, 99), "ms", 1, "its 99th pct"),
        Figure("notify_webhook_count", len(one.latencies_s), "orders", 0, "webhooks received"),
        Figure("notify_webhook_missing", one.missing, "orders", 0,
               "one in flight: no webhook within 10 s"),
        Figure("notify_floor_p50_ms", p(floor_one.latencies_s, 50), "ms", 2,
               "raw producer -> read_committed consumer -> one POST, one in flight"),
        Figure("notify_floor_p99_ms", p(floor_one.latencies_s, 99), "ms", 2, "its 99th pct"),
        Figure("notify_vs_floor_p99", p(one.latencies_s, 99) / p(floor_one.latencies_s, 99),
               "ratio", 1, "notify_webhook_p99_ms / notify_floor_p99_ms (target <= 3)"),
        Figure("notify_max_per_s", maximum.per_s, "orders/s", 0,
               f"delivered, {_CONCURRENCY} callers signing back to back"),
        Figure("notify_load_per_s", load.per_s, "orders/s", 0, at_load),
        Figure("notify_webhook_load_p50_ms", p(load.latencies_s, 50), "ms", 1,
               f"SignOrder answered -> webhook in, {at_load}"),
        Figure("notify_webhook_load_p99_ms", p(load.latencies_s, 99), "ms", 1, "its 99th pct"),
        Figure("notify_floor_load_p50_ms", p(floor_load.latencies_s, 50), "ms", 2,
               "the floor at the same offered rate"),
        Figure("notify_floor_load_p99_ms", p(floor_load.latencies_s, 99), "ms", 2,
               "its 99th pct"),
        Figure("notify_vs_floor_load_p99",
               p(load.latencies_s, 99) / p(floor_load.latencies_s, 99), "ratio", 1,
               "notify_webhook_load_p99_ms / notify_floor_load_p99_ms (target <= 5)"),
        Figure("notify_lost", one.missing + maximum.missing + load.missing, "orders", 0,
               "signed, never delivered (all three runs; target 0)"),
        Figure("notify_reordered", one.reordered + maximum.reordered + load.reordered,
               "orders", 0, "delivered after a later-signed order of the same patient (target 0)"),
        Figure("notify_duplicates", duplicates, "posts", 0, "a webhook-id posted again after 2xx"),
        Figure("kafka_e2e_p50_ms", p(kafka_s, 50), "ms", 2, "producer -> consumer, one in flight"),
        Figure("kafka_e2e_p99_ms", p(kafka_s, 99), "ms", 2, "its 99th pct"),
        Figure("notify_vs_kafka_p50", p(one.latencies_s, 50) / p(kafka_s, 50), "ratio", 1,
               "notify_webhook_p50_ms / kafka_e2e_p50_ms (lower is better)"),
    ]  # fmt: skip
