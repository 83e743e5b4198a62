"""Stopping with a dependency gone: a gateway whose MongoDB has stopped still exits promptly on SIGTERM.

Finding: with the store stopped first, each shutdown step that touched it waited for pymongo's 30 s server
selection, and a gateway took minutes to exit (the launcher killed it; Kubernetes would too after its grace).
Also: ``LocalSystem`` stopped only processes with the names it knows, so a replica added under another name
outlived the system.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.shutdown import ShutdownSteps

pytestmark = pytest.mark.e2e


#: the gateways' stop budget here (test settings; defaults 20 s and 5 s per step): each of the three gateways
#: stops with the store gone, and waited 5 s on a step that needs it
BUDGET_S, STEP_S = 4.0, 1.0


def stops_within_budget_without_the_store(system, service, what: str) -> None:
    """Stop the embedded store, then SIGTERM ``service``: it exits cleanly within its budget."""
    system.mongo.stop()
    time.sleep(1.0)
    started = time.monotonic()
    service.proc.send_signal(signal.SIGTERM)
    service.proc.wait(60)
    took = time.monotonic() - started
    assert service.proc.returncode == 0
    assert took < BUDGET_S + 5.0, f"{what} took {took:.1f} s to stop"  # + the interpreter's own exit


def test_a_gateway_exits_within_its_shutdown_budget_when_the_store_is_gone(tmp_path):
    config = SystemConfig(data_dir=tmp_path, gateway_port=0, scheduler_interval_s=86400,
                          mongodb_uri=None, extra_env={"MONGODB_DB": f"stop_{uuid.uuid4().hex[:8]}",
                                                       "GATEWAY_SHUTDOWN_BUDGET_SECONDS": str(BUDGET_S),
                                                       "GATEWAY_SHUTDOWN_STEP_SECONDS": str(STEP_S)})
    if os.environ.get("MONGODB_URI"):
        pytest.skip("needs the embedded store, which this test stops")
    with LocalSystem(config) as system:
        replica = system.add_gateway_replica("gateway_under_another_name")
        extra = system.add_gateway_replica("one_more_replica")
        stops_within_budget_without_the_store(system, replica, "the gateway")
        assert "did not finish" in replica.log_path.read_text() + (tmp_path / "logs" / "gateway_under_another_name.jsonl").read_text()
    assert extra.proc.poll() is not None, "a replica added under another name outlived the system"


def test_the_scheduler_exits_within_its_shutdown_budget_when_the_store_is_gone(tmp_path):
    """Finding (a helper's fault trial): with MongoDB stopped, the scheduler took longer than 10 s to stop (the
    lease release and the audit log's last flush waited on the store)."""
    if os.environ.get("MONGODB_URI"):
        pytest.skip("needs the embedded store, which this test stops")
    config = SystemConfig(data_dir=tmp_path, gateway_port=0, scheduler_interval_s=86400, bff_port=None,
                          mongodb_uri=None, extra_env={"MONGODB_DB": f"stop_{uuid.uuid4().hex[:8]}",
                                                       "SCHEDULER_SHUTDOWN_BUDGET_SECONDS": str(BUDGET_S),
                                                       "SCHEDULER_SHUTDOWN_STEP_SECONDS": str(STEP_S)})
    with LocalSystem(config) as system:
        stops_within_budget_without_the_store(system, system.processes["scheduler"], "the scheduler")


async def test_shutdown_steps_bound_each_step_and_the_whole():
    import asyncio

    now = [0.0]
    steps = ShutdownSteps(budget_s=1.0, step_s=0.2, clock=lambda: now[0])
    done = []

    async def quick():
        done.append("quick")

    async def stuck():
        await asyncio.sleep(3600)

    async def broken():
        raise RuntimeError("boom")

    await steps.step("quick", quick())
    await steps.step("stuck", stuck())
    await steps.step("broken", broken())
    now[0] = 2.0  # the budget is spent: later steps are skipped, their coroutines closed
    late = quick()
    await steps.step("late", late)
    assert done == ["quick"] and steps.abandoned == ["stuck", "broken", "late"]
    assert late.cr_frame is None  # closed, not left pending
