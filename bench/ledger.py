"""Ledger benchmark: prints figures and ends with one JSON line of them. Not a test.

    .venv/bin/python bench/ledger.py [--quick] [--witnesses N]

Runs against PostgreSQL and Redis (a fresh database `portal_bench`, Redis db 14 by default;
override with BENCH_DATABASE_URL / BENCH_BROKER_URL) with a real Celery worker process.
Measures, in one run:
- anchoring throughput through the worker (pending -> anchored, events/s);
- commit-to-anchored latency p50/p99 under a steady load of 2,000 events/s;
- verify_ledger on the whole log (1,000,000 entries; --quick: 50,000): the log checks, and
  separately the subject re-digest pass;
- receipt generation and verification time, and receipt size;
- the raw hashlib SHA-256 rate over the same leaf bytes, so figures also print as ratios;
- with --witnesses N: N `python -m ledger.witness` processes on loopback (keys and SQLite files
  in a temporary directory), the portal configured with them (quorum: all) and a worker for
  the `ledger.witness` queue; then also commit -> witnessed p50/p99 under the same load (when
  each event's entry first fell under a checkpoint whose stored cosignatures met the quorum),
  and add-checkpoint requests/s against a fresh witness (sequential, and 4 clients).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import recreate_database, say  # noqa: E402


def setup_environment() -> tuple[str, str]:
    db_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench")
    broker = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
    os.environ["DATABASE_URL"] = db_url
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ.setdefault("DEBUG", "true")  # the demo's generated secrets in .local/
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    return db_url, broker


def worker_environment() -> dict[str, str]:
    """The worker runs as deployed (the pool as configured); this process has no pool,
    because its load processes fork and a pool's connections cannot cross a fork."""
    env = dict(os.environ)
    os.environ["DB_POOL"] = "false"
    return env


class Witnesses:
    """Witness processes on loopback (python -m ledger.witness), their keys and SQLite files
    in a temporary directory, and the settings that make the portal use them."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-witnesses-"))
        self.procs: list[subprocess.Popen] = []
        self.urls: list[str] = []
        self.vkeys: list[str] = []
        self.env: dict[str, str] = {}
        self.configured = 0  # how many the portal uses (the add-checkpoint one is not)

    def start(self, name: str, logs: list[str]) -> str:
        """Start one witness of these logs (ORIGIN=VKEY each) on a random port: its URL."""
        key = self.folder / f"{name}.key"
        subprocess.run(
            [sys.executable, "-m", "ledger.witness", "keygen", "--name", f"bench.localhost/{name}",
             "--out", str(key)],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        vkey = subprocess.run(
            [sys.executable, "-m", "ledger.witness", "vkey", "--key", str(key)],
            cwd=ROOT, check=True, text=True, stdout=subprocess.PIPE,
        ).stdout.strip()  # fmt: skip
        log_args = [arg for log in logs for arg in ("--log", log)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.witness", "serve", "--db",
             str(self.folder / f"{name}.sqlite3"), "--key", str(key), *log_args,
             "--listen", "127.0.0.1:0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # "listening http://HOST:PORT", first
        if not line.startswith("listening "):
            raise SystemExit(f"witness {name} did not start (it said {line!r})")
        url = line.split(" ", 1)[1]
        self.urls.append(url)
        self.vkeys.append(vkey)
        return url

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def log_key() -> str:
    """The bench log's ORIGIN=VKEY, from the settings the bench runs with (the demo's .local
    secrets), asked of a separate process: this one must not load settings before the
    witnesses are in its environment."""
    from portal.run import LOG_KEY_CODE

    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", LOG_KEY_CODE],
        cwd=ROOT, check=True, text=True, stdout=subprocess.PIPE, env=dict(os.environ),
    ).stdout  # fmt: skip
    return out.strip().splitlines()[-1]


def start_witnesses(count: int, env: dict[str, str]) -> Witnesses:
    """`count` witnesses of the bench log on loopback, configured (quorum: all) in this
    process's environment and in `env` (the workers'), before Django is set up."""
    witnesses = Witnesses()
    if count <= 0:
        return witnesses
    log = log_key()
    specs = []
    for n in range(1, count + 1):
        url = witnesses.start(f"w{n}", [log])
        specs.append(f"w{n}={url}={witnesses.vkeys[-1]}")
    witnesses.configured = count
    witnesses.env = {"LEDGER_WITNESSES": ",".join(specs), "LEDGER_WITNESS_QUORUM": "all"}
    os.environ.update(witnesses.env)
    env.update(witnesses.env)
    say(f"{count} witnesses on loopback (quorum all): {', '.join(witnesses.urls)}")
    return witnesses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument(
        "--witnesses",
        type=int,
        default=0,
        metavar="N",
        help="run N witnesses on loopback and measure witnessing too (needs ledger.witness)",
    )
    args = parser.parse_args()
    db_url, _broker = setup_environment()
    env = worker_environment()
    witnesses = start_witnesses(args.witnesses, env)
    try:
        return run(args, db_url, env, witnesses)
    finally:
        witnesses.stop()


def run(args: argparse.Namespace, db_url: str, env: dict[str, str], witnesses: Witnesses) -> int:
    log_size = 50_000 if args.quick else 1_000_000
    throughput_n = 20_000 if args.quick else 200_000
    load_seconds = 5 if args.quick else 15
    rate = 2_000
    say(f"Ledger benchmark ({'quick' if args.quick else 'full'}) on {db_url.split('@')[-1]}")
    recreate_database(db_url)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import hashlib

    from django.db import connection, connections, transaction
    from django.utils import timezone

    from ledger import events, verifier
    from ledger.anchoring import ledger_anchor_pending
    from ledger.backfill import subjects_backfill
    from ledger.keys import log_verifier
    from ledger.models import Entry, Event
    from ledger.proofs import receipt_for_event
    from ledger.subjects import digest_of
    from ledger.tasks import anchor
    from ledger.verification import ledger_verify
    from portal.celery import app
    from portal.ops.progress import Progress
    from portal.records.models import Patient
    from portal.tenancy.models import Hospital

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
        conn.default_channel.queue_purge("ledger.witness")

    hospitals = [
        Hospital.objects.create(slug="bench-a", name="Bench A"),
        Hospital.objects.create(slug="bench-b", name="Bench B"),
    ]
    patients = Patient._base_manager.bulk_create(
        Patient(
            hospital=hospitals[i % 2],
            mrn=f"B{i:06d}",
            given_name="Bench",
            family_name=f"Patient{i}",
            birth_date=dt.date(1980, 1, 1),
        )
        for i in range(1000)
    )
    digests = {p.pk: digest_of(p, hospital_id=p.hospital_id) for p in patients}
    # Bulk-created rows have no event: one each, anchored before anything is measured
    # (verify_ledger's coverage pass accounts for every patient; reads vouch for nothing).
    subjects_backfill()
    ledger_anchor_pending()

    def bulk_events(n: int) -> None:
        """Fast generator of pending outbox rows (the same leaf bytes event_record makes)."""
        now = timezone.now()
        batch: list[Event] = []
        with Progress("  generating events", n) as progress:
            for i in range(n):
                p = patients[i % len(patients)]
                eid = uuid.uuid4()
                leaf = events.canonical_leaf(
                    event_id=eid, kind="chart.read", hospital_id=p.hospital_id,
                    subject_type="records.patient", subject_id=str(p.row_uuid), patient_id=p.pk,
                    actor_id=None, recorded_at=now, digest=digests[p.pk], attrs={},
                )  # fmt: skip
                batch.append(
                    Event(
                        event_id=eid,
                        kind="chart.read",
                        hospital_id=p.hospital_id,
                        subject_type="records.patient",
                        subject_id=str(p.row_uuid),
                        patient_id=p.pk,
                        recorded_at=now,
                        digest=digests[p.pk],
                        attrs={},
                        leaf=leaf,
                    )
                )
                if len(batch) == 5000:
                    Event.objects.bulk_create(batch)
                    progress.advance(len(batch))
                    batch = []
            if batch:
                Event.objects.bulk_create(batch)
                progress.advance(len(batch))

    def pending() -> int:
        return Event.objects.filter(status=Event.PENDING).count()

    def any_pending() -> bool:
        # Polled every 20 ms while the worker runs: counting a 200,000-row backlog each time
        # took a good part of a core from the worker being measured.
        return Event.objects.filter(status=Event.PENDING).exists()

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel", "WARNING",
         "--concurrency", "2", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers = [worker]
    if witnesses.procs:
        # Publication's own worker, as README advises ("Witnesses"): the bench worker's two
        # processes are busy lingering in anchoring tasks.
        publisher = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel", "WARNING",
             "-Q", "ledger.witness", "--concurrency", "1", "--hostname", "publisher@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        workers.append(publisher)
    results: dict[str, float] = {}
    try:
        call_command("worker_ping", "--timeout", "60", stdout=open(os.devnull, "w"))  # noqa: SIM115

        # 1. Throughput through the worker: a backlog, one enqueue, time to drained.
        say(f"1. Anchoring throughput: {throughput_n:,} pending events through the worker")
        bulk_events(throughput_n)
        started = time.perf_counter()
        anchor.delay()
        while any_pending():
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        results["anchor_events_per_s"] = round(throughput_n / elapsed)
        say(f"   {results['anchor_events_per_s']:,} events/s ({elapsed:.2f} s)")

        # 2. Latency under a steady load of `rate` events/s (20 events per transaction),
        # from four load processes at rate/4 each: one Python process cannot record 2,000
        # events/s through event_record (the ORM insert) on this hardware.
        say(f"2. Commit-to-anchored latency at {rate:,} events/s for {load_seconds} s")
        per_tx = 20
        loaders = 4
        interval = per_tx * loaders / rate  # each loader's pace
        tx_each = round(load_seconds * rate / per_tx / loaders)

        def load(seed: int, start: float, pipe) -> None:
            """A fixed schedule of transactions; a loader that falls behind never sleeps, so
            falling behind shows as a lower achieved rate."""
            rnd = random.Random(seed)
            sent: dict[int, float] = {}
            first_at = start + seed * interval / loaders  # staggered: an even stream
            for n in range(tx_each):
                delay = first_at + n * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                with transaction.atomic():
                    ids = []
                    for _ in range(per_tx):
                        p = rnd.choice(patients)
                        ids.append(
                            events.event_record(
                                kind="chart.read", hospital=p.hospital_id, subject=p,
                                actor=None, digest=digests[p.pk], patient=p,
                            ).pk
                        )  # fmt: skip
                at = time.time()
                for pk in ids:
                    sent[pk] = at
            pipe.send((sent, time.perf_counter()))
            pipe.close()
            connections.close_all()

        ctx = multiprocessing.get_context("fork")
        connections.close_all()  # each load process opens its own connection
        start = time.perf_counter() + 0.5  # all start together, after forking
        jobs = []
        for seed in range(loaders):
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=load, args=(seed, start, sender))
            proc.start()
            jobs.append((proc, receiver))
        committed: dict[int, float] = {}
        finished = start
        with Progress("   load", load_seconds * 10) as progress:
            while any(proc.is_alive() and not receiver.poll() for proc, receiver in jobs):
                time.sleep(0.1)
                progress.advance()
            for proc, receiver in jobs:
                sent, done_at = receiver.recv()
                committed.update(sent)
                finished = max(finished, done_at)
                proc.join()
        # Over the scheduled window, or longer if the loaders fell behind it.
        achieved = len(committed) / max(finished - start, load_seconds)
        while any_pending():
            time.sleep(0.02)
        lat = []
        for pk, anchored_at in Event.objects.filter(pk__in=list(committed)).values_list(
            "pk", "anchored_at"
        ):
            lat.append(max(0.0, anchored_at.timestamp() - committed[pk]) * 1000)
        lat.sort()
        results["anchor_latency_p50_ms"] = round(statistics.median(lat), 1)
        results["anchor_latency_p99_ms"] = round(lat[int(len(lat) * 0.99) - 1], 1)
        results["load_events_per_s"] = round(achieved)
        say(
            f"   achieved {achieved:,.0f} events/s; p50 {results['anchor_latency_p50_ms']} ms, "
            f"p99 {results['anchor_latency_p99_ms']} ms"
        )
        if witnesses.urls:
            witnessed_latency(committed, results)

        # 3. verify_ledger over the whole log, grown to `log_size` entries.
        missing = log_size - Entry.objects.count()
        say(f"3. verify_ledger over {log_size:,} entries (anchoring {missing:,} more first)")
        if missing > 0:
            bulk_events(missing)
            anchor.delay()
            with Progress("   anchoring", missing) as progress:
                left = missing
                while left:
                    time.sleep(0.25)
                    now_left = pending()
                    progress.advance(left - now_left)
                    left = now_left
        report = ledger_verify()
        assert report.ok, report.findings[:5]
        results["verify_entries"] = report.entries
        results["verify_log_1m_s"] = round(report.log_seconds * 1_000_000 / report.entries, 2)
        results["verify_log_s"] = round(report.log_seconds, 2)
        results["verify_subjects_s"] = round(report.subject_seconds, 2)
        say(
            f"   log checks {report.log_seconds:.2f} s for {report.entries:,} entries "
            f"(-> {results['verify_log_1m_s']} s per 1M); subject pass "
            f"{report.subject_seconds:.2f} s for {report.subjects:,} subjects"
        )

        # 4. Receipts.
        say("4. Receipts: generation, verification, size (200 random entries)")
        sample = random.sample(range(report.entries), 200)
        events = list(Event.objects.filter(entry__index__in=sample))
        vkey = log_verifier()
        gen, ver, sizes = [], [], []
        for event in events:
            t0 = time.perf_counter()
            receipt = receipt_for_event(event=event)
            t1 = time.perf_counter()
            verifier.verify_receipt(receipt, vkey)
            t2 = time.perf_counter()
            gen.append((t1 - t0) * 1000)
            ver.append((t2 - t1) * 1000)
            sizes.append(len(json.dumps(receipt).encode()))
        results["receipt_generate_ms"] = round(statistics.median(gen), 3)
        results["receipt_verify_ms"] = round(statistics.median(ver), 3)
        results["receipt_bytes"] = max(sizes)
        say(
            f"   generate {results['receipt_generate_ms']} ms, verify "
            f"{results['receipt_verify_ms']} ms (medians), at most {results['receipt_bytes']} bytes"
        )

        # 5. The limit: raw SHA-256 over the same leaf bytes.
        with connection.cursor() as cursor:
            cursor.execute('SELECT leaf FROM ledger_entry ORDER BY "index" LIMIT 200000')
            leaves = [bytes(row[0]) for row in cursor.fetchall()]
        sha = hashlib.sha256
        t0 = time.perf_counter()
        for leaf in leaves:
            sha(b"\x00" + leaf).digest()
        raw = len(leaves) / (time.perf_counter() - t0)
        results["sha256_raw_per_s"] = round(raw)
        say(f"5. Raw hashlib SHA-256 over the same leaves: {raw:,.0f} hashes/s")
        say(
            f"   ratios: anchoring {results['anchor_events_per_s'] / raw:.3f} of raw SHA-256; "
            f"verify log {report.entries / report.log_seconds / raw:.3f} of raw SHA-256"
        )
        results["anchor_ratio_to_sha256"] = round(results["anchor_events_per_s"] / raw, 4)
        results["verify_ratio_to_sha256"] = round(report.entries / report.log_seconds / raw, 4)

        # 6. The witnesses' side: add-checkpoint requests/s.
        if witnesses.urls:
            add_checkpoint_rate(witnesses, results, limit=300 if args.quick else 1000)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    results["quick"] = bool(args.quick)
    results["witnesses"] = witnesses.configured
    print(json.dumps(results, sort_keys=True), flush=True)
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q) - 1)]


def witnessed_latency(committed: dict[int, float], results: dict[str, float]) -> None:
    """Commit -> witnessed: when an event's entry first fell under a checkpoint whose stored
    cosignatures met the quorum (the time the quorum's last cosignature was stored), for
    the load's events, once publication has caught up with them."""
    import bisect

    from ledger.models import Checkpoint, Cosignature, Entry
    from ledger.publication import checkpoint_witnessed, witness_setup

    index_of = dict(
        Entry.objects.filter(event_id__in=list(committed)).values_list("event_id", "index")
    )
    last = max(index_of.values())
    deadline = time.monotonic() + 120
    while True:
        witnessed = checkpoint_witnessed()
        if witnessed is not None and witnessed.size > last:
            break
        if time.monotonic() > deadline:
            say("   not witnessed within 120 s of the load's end")
            results["witnessed_latency_p50_ms"] = results["witnessed_latency_p99_ms"] = -1
            return
        time.sleep(0.05)
    setup = witness_setup()
    quorum_at: dict[int, float] = {}  # checkpoint size -> when its quorum was stored
    names: dict[int, set[str]] = {}
    for size, name, vkey, stored in Cosignature.objects.order_by("created_at").values_list(
        "checkpoint__size", "witness", "vkey", "created_at"
    ):
        w = setup.by_name.get(name)
        if w is None or w.vkey != vkey or size in quorum_at:
            continue
        names.setdefault(size, set()).add(name)
        if setup.quorum_met(names[size]):
            quorum_at[size] = stored.timestamp()
    sizes = sorted(quorum_at)
    earliest = [0.0] * len(sizes)  # earliest witnessed time among checkpoints sizes[j:]
    running = float("inf")
    for j in range(len(sizes) - 1, -1, -1):
        running = min(running, quorum_at[sizes[j]])
        earliest[j] = running
    lat = []
    for pk, at in committed.items():
        j = bisect.bisect_right(sizes, index_of[pk])  # the first witnessed size > index
        lat.append(max(0.0, earliest[j] - at) * 1000)
    cosigned = len(quorum_at)
    total = Checkpoint.objects.count()
    results["witnessed_latency_p50_ms"] = round(statistics.median(lat), 1)
    results["witnessed_latency_p99_ms"] = round(percentile(lat, 0.99), 1)
    results["witnessed_checkpoints"] = cosigned
    say(
        f"   commit -> witnessed (quorum): p50 {results['witnessed_latency_p50_ms']} ms, "
        f"p99 {results['witnessed_latency_p99_ms']} ms ({cosigned:,} of {total:,} checkpoints "
        "witnessed)"
    )


def add_checkpoint_rate(witnesses: Witnesses, results: dict[str, float], limit: int) -> None:
    """tlog-witness add-checkpoint requests/s against one fresh witness over keep-alive
    connections: successive real checkpoints of the bench log (sizes and roots, with their
    consistency proofs), signed under five bench origins of their own, so that four
    concurrent clients each extend their own log (one log's requests are sequential by
    nature: each names the size the witness cosigned before)."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    from ledger import note
    from ledger.models import Checkpoint
    from ledger.proofs import consistency_proof_for
    from ledger.publication import add_checkpoint_body

    say("6. Witness add-checkpoint requests/s (a fresh witness, keep-alive connections)")
    rows = list(Checkpoint.objects.order_by("size").values_list("size", "root_hash")[:limit])
    proofs = [
        consistency_proof_for(old_size=rows[i - 1][0], new_size=rows[i][0]) if i else []
        for i in range(len(rows))
    ]
    signers = [note.Signer.generate(f"bench.localhost/log{n}") for n in range(5)]
    url = witnesses.start("wrate", [f"{s.name}={s.vkey()}" for s in signers])
    host = urlsplit(url)

    def bodies(signer: note.Signer) -> list[bytes]:
        out = []
        for i, (size, root) in enumerate(rows):
            signed = note.sign_checkpoint(
                note.Checkpoint(origin=signer.name, size=size, root=bytes(root)), signer
            )
            out.append(add_checkpoint_body(rows[i - 1][0] if i else 0, proofs[i], signed))
        return out

    def client(requests: list[bytes], failures: list[int]) -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        for body in requests:
            conn.request("POST", "/add-checkpoint", body=body,
                         headers={"Content-Type": "text/plain; charset=utf-8"})  # fmt: skip
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        conn.close()

    all_bodies = [bodies(signer) for signer in signers]
    failures: list[int] = []
    t0 = time.perf_counter()
    client(all_bodies[0], failures)
    sequential = len(rows) / (time.perf_counter() - t0)
    threads = [threading.Thread(target=client, args=(all_bodies[n], failures)) for n in range(1, 5)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    concurrent = 4 * len(rows) / (time.perf_counter() - t0)
    if failures:
        say(f"   {len(failures)} requests failed: {sorted(set(failures))}")
    results["witness_add_checkpoint_per_s"] = round(sequential)
    results["witness_add_checkpoint_4_clients_per_s"] = round(concurrent)
    say(
        f"   {sequential:,.0f} requests/s sequential, {concurrent:,.0f} with 4 clients "
        f"({len(rows):,} successive checkpoints each; every answer fsynced)"
    )


if __name__ == "__main__":
    sys.exit(main())
