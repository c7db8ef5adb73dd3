"""Provider portal benchmark: prints figures and ends with one JSON line. Not a test.

    .venv/bin/python bench/portal.py [--quick]

On PostgreSQL (a fresh database `portal_bench_web`; BENCH_DATABASE_URL overrides) with
100,000 patients and 1,000,000 records (--quick: 1,000 and 10,000) made by a bulk generator,
under gunicorn with 2 workers, driven by wrk (a separate load process; `apt-get install wrk`):
- p50/p95 latency and requests/s of the patient list, the chart and record creation;
- requests/s of a bare Django view (/healthz) on the same server, so figures print as ratios
  (measured in slices that alternate with every other phase's, so both sides of a ratio see
  the same machine); and of the same view with a signed-in session cookie (`signed_in_rps`:
  the middleware every signed-in page pays), printed as a second reference;
- single-record creates/s through the ledgered service (record + outbox event in one
  transaction) against a plain ORM create of the same row: `ledgered_create_ratio`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import secrets as pysecrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal
from functools import partial
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import recreate_database, say  # noqa: E402


def setup_environment() -> str:
    from portal.localsecrets import SECRET_NAMES, ensure_local_secrets

    db_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_web"
    )
    secrets_file = ROOT / ".local" / "secrets.env"
    ensure_local_secrets(secrets_file)
    for line in secrets_file.read_text().splitlines():
        name, _, value = line.partition("=")
        if name in SECRET_NAMES:
            os.environ.setdefault(name, value)
    # Production settings (DEBUG off), minus TLS, which a load test on loopback does not have.
    os.environ.update(
        {
            "DATABASE_URL": db_url,
            "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/11"),
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "LOG_LEVEL": "WARNING",
        }
    )
    return db_url


LUA = """
local ids = {%(ids)s}
local cookie = "%(cookie)s"
local kind = "%(kind)s"
local csrf = "%(csrf)s"
local pages = %(pages)d
request = function()
  local id = ids[math.random(#ids)]
  if kind == "bare" then
    return wrk.format("GET", "/healthz")
  elseif kind == "signed_in" then
    -- the same bare view, with the clinician's session cookie: what every signed-in request
    -- pays in middleware (session, user, second factor, memberships) before any view runs
    return wrk.format("GET", "/healthz", {["Cookie"] = cookie})
  elseif kind == "list" then
    -- a random page: the list pages by id cursor, so any depth costs the same
    return wrk.format("GET", "/provider/?before=" .. id, {["Cookie"] = cookie})
  elseif kind == "chart" then
    return wrk.format("GET", "/provider/patients/" .. id .. "/", {["Cookie"] = cookie})
  else
    local body = "systolic=" .. math.random(100, 160) .. "&diastolic=" .. math.random(60, 95)
      .. "&effective_at=%(when)s&csrfmiddlewaretoken=" .. csrf
    return wrk.format("POST", "/provider/patients/" .. id .. "/blood-pressure/new/",
      {["Cookie"] = cookie, ["Content-Type"] = "application/x-www-form-urlencoded"}, body)
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"p50_ms":%%.2f,"p95_ms":%%.2f,"p99_ms":%%.2f,"requests":%%d,"seconds":%%.3f,"errors":%%d,"bad_status":%%d}\\n',
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


SLICES = 4


def combine(slices: list[dict]) -> dict:
    """Slices of one phase as one figure: requests over seconds; the median slice's p50,
    and the worst slice's p95 and p99 (percentiles of slices do not add up, so the
    latencies reported are, if anything, pessimistic)."""
    requests = sum(r["requests"] for r in slices)
    duration = sum(r["seconds"] for r in slices)
    return {
        "rps": requests / duration,
        "p50_ms": statistics.median(r["p50_ms"] for r in slices),
        "p95_ms": max(r["p95_ms"] for r in slices),
        "p99_ms": max(r["p99_ms"] for r in slices),
        "errors": sum(r["errors"] for r in slices),
        "bad_status": sum(r["bad_status"] for r in slices),
    }


def report(kind: str, r: dict, results: dict[str, float]) -> None:
    if r["errors"] or r["bad_status"]:
        say(f"  WARNING: {kind}: {r['errors']} socket errors, {r['bad_status']} bad status")
    results[f"{kind}_rps"] = round(r["rps"], 1)
    if kind not in ("bare", "signed_in"):
        results[f"{kind}_p50_ms"] = round(r["p50_ms"], 2)
        results[f"{kind}_p95_ms"] = round(r["p95_ms"], 2)
    say(
        f"  {kind:<9} {r['rps']:8.1f} req/s   p50 {r['p50_ms']:7.2f} ms   "
        f"p95 {r['p95_ms']:7.2f} ms   p99 {r['p99_ms']:7.2f} ms"
    )


def signed_in_session_data(user, device, hospital_id: int) -> dict:
    """A session as the log-in views write it: the user through Django's ModelBackend,
    its TOTP device verified, an hour of idle time, the active hospital."""
    from portal.accounts.middleware import AUTH_AT, IDLE_SECONDS, SEEN_AT

    now = time.time()
    return {
        "_auth_user_id": str(user.pk),
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": user.get_session_auth_hash(),
        "otp_device_id": device.persistent_id,
        AUTH_AT: now,
        SEEN_AT: now,
        IDLE_SECONDS: 3600.0,
        "active_hospital_id": hospital_id,
    }


def start_server(port: int, cwd: Path = ROOT) -> subprocess.Popen:
    """gunicorn with 2 workers serving the checkout at `cwd`, once /healthz answers."""
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"],
        cwd=cwd, env={**os.environ},
    )  # fmt: skip
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"bench: the server on port {port} did not start")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def preflight(kind: str, *, port: int, patient_id: int, cookie: str, csrf: str) -> None:
    """One request of the phase, as wrk will send it, that must answer as the page does
    when it works (wrk counts only 4xx and 5xx as bad, so a phase signed out by a broken
    session would otherwise measure the log-in redirect)."""
    base = f"http://127.0.0.1:{port}"
    when = (dt.datetime.now() - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    url, data, expect = {
        "bare": ("/healthz", None, 200),
        "signed_in": ("/provider/", None, 200),  # the session signs the clinician in
        "list": (f"/provider/?before={patient_id}", None, 200),
        "chart": (f"/provider/patients/{patient_id}/", None, 200),
        "create": (
            f"/provider/patients/{patient_id}/blood-pressure/new/",
            f"systolic=120&diastolic=80&effective_at={when}&csrfmiddlewaretoken={csrf}".encode(),
            302,
        ),
    }[kind]
    request = urllib.request.Request(base + url, data=data)  # noqa: S310 - http to loopback
    if kind != "bare":
        request.add_header("Cookie", cookie)
    try:
        status = urllib.request.build_opener(_NoRedirect).open(request, timeout=30).status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status != expect:
        raise SystemExit(f"bench: {kind}: {url} answered {status}, not {expect}")


def run_wrk(
    kind: str,
    *,
    port: int,
    seconds: int,
    ids: list[int],
    cookie: str,
    csrf: str,
    pages: int,
    connections: int = 4,
) -> dict:
    when = (dt.datetime.now() - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    script = LUA % {
        "ids": ",".join(map(str, ids)),
        "cookie": cookie,
        "kind": kind,
        "csrf": csrf,
        "pages": max(pages, 1),
        "when": when,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            fh.name,
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    os.unlink(fh.name)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 patients, under 2 minutes")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure again on the database a previous run of the same size generated",
    )
    parser.add_argument(
        "--only",
        help="comma-separated phases to run besides the bare view (e.g. chart), for iterating "
        "on one figure; skips the create comparison",
    )
    args = parser.parse_args()
    n_patients = 1_000 if args.quick else 100_000
    n_records = 10_000 if args.quick else 1_000_000
    seconds = 8 if args.quick else 20
    if not shutil.which("wrk"):
        say("wrk is needed as the load process: apt-get install wrk")
        return 2

    db_url = setup_environment()
    say(
        f"Portal benchmark ({'quick' if args.quick else 'full'}): {n_patients:,} patients, "
        f"{n_records:,} records on {db_url.split('@')[-1]}"
    )
    if not args.reuse:
        recreate_database(db_url)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from portal.accounts.models import TOTPDevice
    from portal.accounts.services import totp_device_create
    from portal.ops.progress import Progress
    from portal.records import services
    from portal.records.models import (
        Condition,
        MedicationRequest,
        Observation,
        Patient,
        PatientGroupObjectPermission,
    )
    from portal.tenancy.models import Hospital, Role
    from portal.tenancy.scoping import unscoped
    from portal.tenancy.selectors import hospital_clinical_group
    from portal.tenancy.services import membership_ensure

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)

    if args.reuse:
        a = Hospital.objects.get(slug="bench-a")
        clinician = get_user_model().objects.get(username="bench.clinician")
        device = TOTPDevice.objects.get(user=clinician)
        with unscoped():
            patients = list(Patient.objects.order_by("id").only("id", "hospital_id"))
        rng = random.Random(7)
        say(f"  reusing {len(patients):,} patients")
    else:
        # --- the bulk generator ----------------------------------------------------------------
        started = time.perf_counter()
        a = Hospital.objects.create(slug="bench-a", name="Bench A")
        b = Hospital.objects.create(slug="bench-b", name="Bench B")
        User = get_user_model()
        clinician = User.objects.create(username="bench.clinician")
        membership_ensure(user=clinician, hospital=a, role=Role.CLINICIAN)
        device = totp_device_create(user=clinician, name="bench", confirmed=True)
        rng = random.Random(7)
        perms = {
            p.codename: p
            for p in Permission.objects.filter(
                content_type__app_label="records", codename__in=["view_patient", "change_patient"]
            )
        }
        groups = {h.pk: hospital_clinical_group(hospital_id=h.pk) for h in (a, b)}
        patients: list[Patient] = []
        with Progress("  patients", n_patients) as progress:
            for start in range(0, n_patients, 5000):
                batch = [
                    Patient(
                        hospital=a if i % 2 == 0 else b,
                        mrn=f"BM{i:07d}",
                        given_name=rng.choice(["Ann", "Ben", "Cai", "Dee", "Eli"]),
                        family_name=f"Bench{i:06d}",
                        birth_date=dt.date(1930 + i % 80, 1 + i % 12, 1),
                        sex=Patient.Sex.UNKNOWN,
                    )
                    for i in range(start, min(start + 5000, n_patients))
                ]
                with transaction.atomic():
                    Patient._base_manager.bulk_create(batch)
                    PatientGroupObjectPermission.objects.bulk_create(
                        PatientGroupObjectPermission(
                            content_object=p, group=groups[p.hospital_id], permission=perm
                        )
                        for p in batch
                        for perm in perms.values()
                    )
                patients.extend(batch)
                progress.advance(len(batch))
        now = timezone.now()
        codes = [
            ("8867-4", "Heart rate", "/min", 72),
            ("8480-6", "Systolic blood pressure", "mm[Hg]", 122),
            ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 98),
        ]
        with Progress("  records", n_records) as progress:
            for start in range(0, n_records, 10_000):
                obs, conds, meds = [], [], []
                for i in range(start, min(start + 10_000, n_records)):
                    p = patients[i % n_patients]
                    kind = i % 10
                    if kind == 8:
                        conds.append(
                            Condition(
                                hospital_id=p.hospital_id,
                                patient=p,
                                code="44054006",
                                display="Diabetes mellitus type 2",
                            )
                        )
                    elif kind == 9:
                        meds.append(
                            MedicationRequest(
                                hospital_id=p.hospital_id,
                                patient=p,
                                code="860975",
                                display="Metformin 500 MG",
                                authored_on=now,
                            )
                        )
                    else:
                        code, display, unit, mean = codes[kind % 3]
                        obs.append(
                            Observation(
                                hospital_id=p.hospital_id,
                                patient=p,
                                category="vital-signs",
                                code=code,
                                display=display,
                                unit=unit,
                                value=Decimal(mean + rng.randint(-9, 9)),
                                effective_at=now - dt.timedelta(days=i // n_patients, minutes=kind),
                            )
                        )
                with transaction.atomic():
                    Observation._base_manager.bulk_create(obs)
                    Condition._base_manager.bulk_create(conds)
                    MedicationRequest._base_manager.bulk_create(meds)
                progress.advance(len(obs) + len(conds) + len(meds))
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        generated = time.perf_counter() - started
        say(f"  generated in {generated:.1f} s")

    # --- a signed-in clinician's session (as the log-in views would write it) ---------------
    # The configured engine: a session another engine stored would sign nobody in.
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session.update(signed_in_session_data(clinician, device, a.pk))
    session.create()
    csrf = pysecrets.token_hex(16)  # 32 characters: Django accepts the unmasked secret
    cookie = f"sessionid={session.session_key}; csrftoken={csrf}"
    ids = [p.pk for p in patients if p.hospital_id == a.pk]
    sample = rng.sample(ids, min(2000, len(ids)))
    pages = max(1, len(ids) // 25)

    port = int(os.environ.get("BENCH_PORT", "8765"))
    server = start_server(port)
    results: dict[str, float] = {}
    try:
        kinds = ["bare", "signed_in", "list", "chart", "create"]
        if args.only:
            kinds = ["bare", *[k for k in kinds[1:] if k in args.only.split(",")]]
        # Each phase alternates with the bare view, slice by slice, and the bare figure is
        # every bare slice together: this machine's speed drifts from minute to minute (a
        # shared host), and a ratio of two figures taken a minute apart measured the drift
        # as much as the pages (the same code gave 10% to 13% run to run).
        slice_seconds = max(1, seconds // SLICES)
        wrk = partial(run_wrk, port=port, ids=sample, cookie=cookie, csrf=csrf, pages=pages)
        preflight("bare", port=port, patient_id=sample[0], cookie=cookie, csrf=csrf)
        wrk("bare", seconds=2)
        bare_slices: list[dict] = []
        for kind in kinds[1:] or ["bare"]:
            preflight(kind, port=port, patient_id=sample[0], cookie=cookie, csrf=csrf)
            wrk(kind, seconds=2)
            slices = []
            for _ in range(SLICES):
                bare_slices.append(wrk("bare", seconds=slice_seconds))
                if kind != "bare":
                    slices.append(wrk(kind, seconds=slice_seconds))
            if kind != "bare":
                report(kind, combine(slices), results)
        report("bare", combine(bare_slices), results)
    finally:
        server.terminate()
        server.wait(timeout=30)
    bare = results["bare_rps"]
    if args.only:
        for kind in kinds[1:]:
            results[f"{kind}_ratio_to_bare"] = round(results[f"{kind}_rps"] / bare, 3)
        print(json.dumps(results, sort_keys=True), flush=True)
        return 0
    for kind in ("list", "chart", "create"):
        results[f"{kind}_ratio_to_bare"] = round(results[f"{kind}_rps"] / bare, 3)
    say(
        "  ratios to the bare view: "
        + ", ".join(f"{k} {results[f'{k}_ratio_to_bare']:.1%}" for k in ("list", "chart", "create"))
    )
    # A second reference, not a replacement: the targets are against the bare view above.
    results["chart_ratio_to_signed_in"] = round(results["chart_rps"] / results["signed_in_rps"], 3)
    say(
        f"  the bare view signed in: {results['signed_in_rps']:.1f} req/s "
        f"(chart {results['chart_ratio_to_signed_in']:.1%} of it)"
    )

    # --- ledgered create vs plain ORM create, same row, same database -----------------------
    # Both autocommit one statement per create. Each path is warmed up first, untimed: the
    # first ledgered create opens the process's broker connection for the anchoring enqueue
    # (about 80 ms, once), which is start-up, not a per-create cost; then the two alternate
    # in rounds, so background load drifting during the run falls on both alike.
    n = 500 if args.quick else 2000
    rounds = 5
    target = patients[0]
    when = timezone.now() - dt.timedelta(hours=1)

    def plain_create(i: int) -> None:
        Observation._base_manager.create(
            hospital_id=target.hospital_id,
            patient=target,
            category="vital-signs",
            code="8867-4",
            display="Heart rate",
            value=Decimal(60 + i % 40),
            unit="/min",
            effective_at=when,
            recorded_by=clinician,
        )

    def ledgered_create(i: int) -> None:
        services.observation_create(
            actor=clinician,
            patient=target,
            code="8867-4",
            display="Heart rate",
            value=Decimal(60 + i % 40),
            unit="/min",
            effective_at=when,
        )

    spent = {plain_create: 0.0, ledgered_create: 0.0}
    with unscoped():
        for create in spent:
            for i in range(20):
                create(i)
        for _ in range(rounds):
            for create in spent:
                t0 = time.perf_counter()
                for i in range(n // rounds):
                    create(i)
                spent[create] += time.perf_counter() - t0
    plain = n / spent[plain_create]
    ledgered = n / spent[ledgered_create]
    results["plain_create_per_s"] = round(plain)
    results["ledgered_create_per_s"] = round(ledgered)
    results["ledgered_create_ratio"] = round(ledgered / plain, 3)
    say(
        f"  creates/s: plain ORM {plain:,.0f}, ledgered service {ledgered:,.0f} "
        f"(ratio {ledgered / plain:.2f})"
    )
    results["patients"], results["records"] = n_patients, n_records
    results["quick"] = bool(args.quick)
    print(json.dumps(results, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
