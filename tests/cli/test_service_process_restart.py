"""A service started again with the same log file: its metrics URL is this run's, not the last run's.

Finding: a second ``adfatigue up`` in the same folder printed (and wrote to endpoints.json) the first run's
/metrics URLs, read from the appended log, so ``stats`` and ``status`` said every service was down.
"""

from __future__ import annotations


from services.cli.service_process import ServiceProcess

FAKE = '''
import sys, time
port = sys.argv[1]
print(f"fake listening on 127.0.0.1:{port}", flush=True)
print(f"fake metrics on http://127.0.0.1:{int(port) + 1}/metrics", flush=True)
time.sleep(60)
'''


def test_the_metrics_url_is_read_from_this_runs_lines(tmp_path):
    (tmp_path / "fake_service.py").write_text(FAKE)
    log = tmp_path / "fake.log"
    seen = []
    for port in ("41000", "42000"):
        proc = ServiceProcess("fake", "fake_service", [port], log, {"PYTHONPATH": str(tmp_path)})
        proc.start(timeout=30)
        try:
            seen.append((proc.port, proc.metrics_url()))
        finally:
            proc.stop(timeout=5)
    assert seen == [(41000, "http://127.0.0.1:41001/metrics"), (42000, "http://127.0.0.1:42001/metrics")]


def test_a_service_with_telemetry_off_has_no_metrics_url_and_no_wait_for_one(tmp_path):
    """Finding: ``LocalSystem`` waited 5 s for the ``metrics on`` line of a process started with telemetry off
    (which never prints one), each time it wrote endpoints.json."""
    import time

    (tmp_path / "fake_service.py").write_text(FAKE.replace('print(f"fake metrics', '# print(f"fake metrics'))
    for env in ({"ADFATIGUE_TELEMETRY": "off"}, {"METRICS_PORT": "-1"}):
        proc = ServiceProcess("fake", "fake_service", ["43000"], tmp_path / "fake.log",
                              {"PYTHONPATH": str(tmp_path), **env})
        proc.start(timeout=30)
        try:
            started = time.monotonic()
            assert not proc.serves_metrics() and proc.metrics_url(timeout=30) is None
            assert time.monotonic() - started < 5
        finally:
            proc.stop(timeout=5)
    assert ServiceProcess("fake", "fake_service", [], tmp_path / "x.log", {}).serves_metrics()
