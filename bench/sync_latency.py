"""Publish-to-visible latency of single items, ru -> kz and uz, on a fresh local federation.

    .venv/bin/python bench/sync_latency.py [--items 100] [--warmup 3] [--interval 0.01]

One item at a time: an editor creates a product note on ru over the editor API and publishes it; the
clock starts when the publish response arrives and stops, per target, when the target's database shows
the item `published` (polled every --interval seconds). The next item is published only once both
receipts are back on ru (the outbox rows are `applied`), so every item meets idle workers. Delivery is the
product's own: Celery workers building, signing and posting manifests, the targets' apply workers.

Prints p50 / p99 / max per target, the time until ru has both receipts (what the editor sees as
`applied`), and where the time goes (from the timestamps the nodes record: manifest built on ru, taken
into the target's inbox, decided by the target's apply worker).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
import uuid
from dataclasses import dataclass, field

import httpx
from _federation import NodeHandle, federation_client, local_federation, poll, print_footer, print_header, say, summary_ms

TARGETS = ("kz", "uz")
ITEM_TIMEOUT = 120.0


@dataclass
class Sample:
    item_id: str
    published_wall: float
    visible: dict[str, float] = field(default_factory=dict)
    """Seconds from the publish response to the row being visible on each target."""
    receipts: float = 0.0
    """Seconds from the publish response until both outbox rows on ru are `applied`."""


def draft(number: int) -> dict[str, object]:
    return {
        "kind": "product_note",
        "category": "product_note",
        "specializations": ["cardiology"],
        "texts": [
            {
                "language": "ru",
                "title": f"Новая форма выпуска, заметка {number}",
                "body": "Таблетки теперь выпускаются в упаковке по тридцать штук. Состав и дозировка не изменились.",
            }
        ],
        "targets": list(TARGETS),
    }


def publish_one(http: httpx.Client, ru: NodeHandle, number: int) -> tuple[str, float, float]:
    """Create and publish one note; returns its id and the perf_counter and wall-clock times of the response."""
    created = http.post(f"{ru.node_url}/api/v1/content", json=draft(number))
    created.raise_for_status()
    item_id = str(created.json()["id"])
    published = http.post(f"{ru.node_url}/api/v1/content/{item_id}/publish")
    now, wall = time.perf_counter(), time.time()
    published.raise_for_status()
    refused = [v["target"] for v in published.json()["verdicts"] if not v["accepted"]]
    if refused:
        raise SystemExit(f"ru's policy refused the benchmark item for {refused}: {published.text}")
    return item_id, now, wall


class Probe:
    """Open connections to ru's and the targets' databases, polled while an item travels."""

    def __init__(self, nodes: dict[str, NodeHandle]) -> None:
        self.ru = nodes["ru"]
        self.origin = self.ru.connect()
        self.targets = {t: nodes[t].connect() for t in TARGETS}

    def close(self) -> None:
        for conn in (self.origin, *self.targets.values()):
            conn.close()

    def measure(self, http: httpx.Client, number: int, interval: float) -> Sample:
        item_id, start, wall = publish_one(http, self.ru, number)
        sample = Sample(item_id, wall)
        item = uuid.UUID(item_id)

        def visible_everywhere() -> bool:
            now = time.perf_counter()
            for target, conn in self.targets.items():
                if target in sample.visible:
                    continue
                row = conn.execute("SELECT status FROM shared.content_item WHERE id = %s", (item,)).fetchone()
                if row is not None and row[0] == "published":
                    sample.visible[target] = now - start
            return len(sample.visible) == len(TARGETS)

        poll(visible_everywhere, interval=interval, timeout=ITEM_TIMEOUT, what=f"item {item_id} on {', '.join(TARGETS)}")

        def receipts_back() -> bool:
            query = "SELECT count(*) FROM federation.outbox WHERE item_id = %s AND status = 'applied'"
            row = self.origin.execute(query, (item,)).fetchone()
            return row is not None and row[0] == len(TARGETS)

        sample.receipts = poll(receipts_back, interval=interval, timeout=ITEM_TIMEOUT, what=f"receipts for {item_id}") - start
        return sample


def stages(nodes: dict[str, NodeHandle], samples: list[Sample]) -> dict[str, dict[str, list[float]]]:
    """Per target: publish -> manifest built on ru (`manifest_out.created_at`), -> taken into the target's inbox
    (`manifest_in.received_at`), -> apply started (`decided_at`, stamped when the apply worker picks it up), -> visible."""
    ids = [uuid.UUID(s.item_id) for s in samples]
    published = {s.item_id: s for s in samples}
    result: dict[str, dict[str, list[float]]] = {}
    with nodes["ru"].connect() as ru:
        built = {
            (str(item), target): (sequence, created)
            for item, target, sequence, created in ru.execute(
                "SELECT o.item_id, o.target, m.sequence, m.created_at FROM federation.outbox o "
                "JOIN federation.manifest_out m ON m.target = o.target AND m.sequence = o.manifest_sequence WHERE o.item_id = ANY(%s)",
                (ids,),
            )
        }
    for target in TARGETS:
        with nodes[target].connect() as conn:
            inbox = {
                sequence: (received, decided)
                for sequence, received, decided in conn.execute(
                    "SELECT sequence, received_at, decided_at FROM federation.manifest_in WHERE origin = 'ru' AND in_chain"
                )
            }
        parts: dict[str, list[float]] = {"manifest built": [], "in inbox": [], "apply started": [], "visible": []}
        for item_id, sample in published.items():
            if (item_id, target) not in built:
                continue
            sequence, created = built[(item_id, target)]
            received, decided = inbox.get(sequence, (None, None))
            if not isinstance(received, datetime.datetime) or not isinstance(decided, datetime.datetime):
                continue
            parts["manifest built"].append(created.timestamp() - sample.published_wall)
            parts["in inbox"].append((received - created).total_seconds())
            parts["apply started"].append((decided - received).total_seconds())
            parts["visible"].append(sample.published_wall + sample.visible[target] - decided.timestamp())
        result[target] = parts
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100, help="items measured (default 100)")
    parser.add_argument("--warmup", type=int, default=3, help="items published first and not counted (default 3)")
    parser.add_argument("--interval", type=float, default=0.01, help="polling interval of the targets' databases, seconds")
    args = parser.parse_args()

    print_header("sync latency: publish on ru -> visible on kz and uz, one item at a time")
    with local_federation("latency") as nodes:
        ru = nodes["ru"]
        headers = {"Authorization": f"Bearer {ru.editor_token()}"}
        samples: list[Sample] = []
        probe = Probe(nodes)
        try:
            with federation_client(nodes, headers=headers, timeout=30) as http:
                for number in range(args.warmup):
                    probe.measure(http, -1 - number, args.interval)
                started = time.perf_counter()
                for number in range(args.items):
                    samples.append(probe.measure(http, number, args.interval))
                    if (number + 1) % 25 == 0:
                        say(f"  {number + 1}/{args.items} items ({time.perf_counter() - started:.0f} s)")
        finally:
            probe.close()
        breakdown = stages(nodes, samples)

    say(f"\n{args.items} items, {args.warmup} warm-up items not counted, polling every {args.interval * 1000:.0f} ms")
    say("publish response -> row `published` on the target:")
    for target in TARGETS:
        say(f"  {target}: {summary_ms([s.visible[target] for s in samples])}")
    say(f"  both: {summary_ms([max(s.visible.values()) for s in samples])}")
    say(f"publish response -> both receipts recorded on ru: {summary_ms([s.receipts for s in samples])}")
    say("where the time goes: median ms of each step after the previous one (timestamps the nodes record; one clock):")
    for target, parts in breakdown.items():
        line = " -> ".join(f"{name} +{statistics.median(values) * 1000:.0f}" for name, values in parts.items() if values)
        say(f"  {target}: publish response -> {line}")
    print_footer()


if __name__ == "__main__":
    main()
