import pytest

from portal.ops.models import Heartbeat
from portal.ops.tasks import heartbeat
from tests.conftest import wait_until


@pytest.mark.worker
def test_a_real_worker_runs_tasks_from_the_broker(start_worker):
    worker = start_worker()
    heartbeat.delay("pytest")
    wait_until(
        lambda: Heartbeat.objects.filter(name="pytest").exists(),
        timeout=60,
        message=lambda: "the worker did not run the task:\n" + worker.output()[-3000:],
    )
