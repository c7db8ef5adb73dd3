"""A/B: one page under two checkouts, in alternating wrk runs. Prints figures and ends with
one JSON line. Not a test.

    .venv/bin/python bench/ab.py --a ../other-checkout [--b .] [--kind chart] [--reps 6]

For telling whether a change moves a figure on a machine whose speed drifts from minute to
minute (a shared host): a single bench run of each version, minutes apart, measures the
drift as much as the change. Both checkouts serve the same database under gunicorn with 2
workers each (idle workers cost nothing), and the page's runs alternate A, B, B, A, ...
The figure is the median of each side's runs, and B/A.

Runs on the database a `bench/portal.py` run left (`portal_bench_web`, or
BENCH_DATABASE_URL), as it is: migrate it to the newer checkout first (a bench run of that
checkout does). Each checkout needs its collected static files (`staticfiles/`; a bench run
or `manage.py collectstatic` makes them). A session is written for the signed-in pages.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import say  # noqa: E402
from bench.portal import (  # noqa: E402
    preflight,
    run_wrk,
    setup_environment,
    signed_in_session_data,
    start_server,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, type=Path, help="checkout A (the baseline)")
    parser.add_argument("--b", default=ROOT, type=Path, help="checkout B (default: this one)")
    parser.add_argument("--kind", default="chart", choices=["signed_in", "list", "chart"])
    parser.add_argument("--reps", type=int, default=6, help="runs of each side")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per run")
    args = parser.parse_args()
    setup_environment()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from portal.accounts.models import TOTPDevice
    from portal.records.models import Patient
    from portal.tenancy.models import Membership
    from portal.tenancy.scoping import unscoped

    clinician = get_user_model().objects.get(username="bench.clinician")
    with unscoped():
        hospital_id = Membership.objects.filter(user=clinician).values_list(
            "hospital_id", flat=True
        )[0]
        ids = list(Patient.objects.filter(hospital_id=hospital_id).values_list("pk", flat=True))
    device = TOTPDevice.objects.filter(user=clinician).first()
    data = signed_in_session_data(clinician, device, hospital_id)
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session.update(data)
    session.create()
    cookie = f"sessionid={session.session_key}; csrftoken={'a' * 32}"
    sample = random.Random(1).sample(ids, min(2000, len(ids)))

    sides = {"A": (args.a.resolve(), 8771), "B": (args.b.resolve(), 8772)}
    servers = []
    runs: dict[str, list[float]] = {"A": [], "B": []}
    try:
        for checkout, port in sides.values():
            servers.append(start_server(port, cwd=checkout))
            preflight(args.kind, port=port, patient_id=sample[0], cookie=cookie, csrf="")
        wrk = {
            name: lambda seconds, port=port: run_wrk(
                args.kind,
                port=port,
                seconds=seconds,
                ids=sample,
                cookie=cookie,
                csrf="",
                pages=1,
            )
            for name, (_, port) in sides.items()
        }
        for name in sides:
            wrk[name](2)  # warm up
        for rep in range(args.reps):
            for name in ("A", "B") if rep % 2 == 0 else ("B", "A"):
                result = wrk[name](args.seconds)
                if result["errors"] or result["bad_status"]:
                    say(f"  WARNING: {name}: {result['errors']} errors, {result['bad_status']} bad")
                runs[name].append(result["rps"])
            say(f"  run {rep + 1}: A {runs['A'][-1]:8.1f} req/s   B {runs['B'][-1]:8.1f} req/s")
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    a, b = statistics.median(runs["A"]), statistics.median(runs["B"])
    say(f"  {args.kind}: median A {a:.1f} req/s, B {b:.1f} req/s, B/A {b / a:.3f}")
    print(
        json.dumps(
            {
                "kind": args.kind,
                "a_rps": round(a, 1),
                "b_rps": round(b, 1),
                "b_over_a": round(b / a, 3),
                "reps": args.reps,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
