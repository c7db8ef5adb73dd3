from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.provider.test_queries import _add_records


def test_count(client, sign_in, world):
    a = world["a"]
    sign_in(client, a["clinician"])
    url = f"/provider/patients/{a['patient'].pk}/"
    client.get(url)
    for label in ("empty", "3types"):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        print("\nCOUNT", label, len(ctx.captured_queries))
        for q in ctx.captured_queries:
            print("   ", q["sql"][:150])
        _add_records(a["patient"], a["clinician"], 3)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/provider/").status_code == 200
    print("\nCOUNT list", len(ctx.captured_queries))
