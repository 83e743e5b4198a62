"""Real-time subscriptions across two gateway processes (issue: every change reaches every subscriber).

Changes are made for real: the sandbox restates a provisional day of the
synthetic account (Meta's restatement of conversions), a forced Refresh
through one gateway writes it to MongoDB, and every gateway's change stream
fans it out.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import grpc
import httpx
import pytest

from services.cli.local_system import LocalSystem, SystemConfig
from services.common.auth import bearer, mint_token
from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw, cache_gateway_pb2_grpc
from tests.shared_data import require_real_csv

pytestmark = pytest.mark.e2e

SYNTH = "act_900000000001"
OTHER = "act_1001"
YESTERDAY = datetime.now(timezone.utc).astimezone(ZoneInfo("America/Los_Angeles")).date() - timedelta(days=1)
SINCE, UNTIL = (YESTERDAY - timedelta(days=9)).isoformat(), YESTERDAY.isoformat()


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    config = SystemConfig(
        data_dir=tmp_path_factory.mktemp("subs"), csv_accounts=[(require_real_csv(), OTHER)], gateway_port=0,
        scheduler_interval_s=3600, mongodb_uri=os.environ.get("MONGODB_URI") or None,
        extra_env={"MONGODB_DB": f"subs_{os.getpid()}"},
    )
    with LocalSystem(config) as running:
        running.add_gateway_replica("cache_gateway_b")
        yield running


def md(system):
    return bearer(mint_token(system.jwt_secret, "subs-test", ["*"], ["operator"]))


class Collector:
    """Reads one Subscribe stream in a thread; ``events`` fills as they arrive."""

    def __init__(self, system, gateway: str, account: str, from_version: int | None = None):
        self.channel = grpc.insecure_channel(system.processes[gateway].address)
        stub = cache_gateway_pb2_grpc.CacheGatewayStub(self.channel)
        request = gw.SubscribeRequest(account_id=account, since=SINCE, until=UNTIL)
        if from_version is not None:
            request.from_version = from_version
        self.call = stub.Subscribe(request, metadata=md(system), timeout=120)
        self.events: list[gw.SubscribeEvent] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for event in self.call:
                self.events.append(event)
        except grpc.RpcError as exc:
            self.error = exc

    def data_events(self) -> list[gw.SubscribeEvent]:
        """Snapshots and row changes (fatigue-only updates left out)."""
        return [e for e in self.events if e.kind != gw.SubscribeEvent.CHANGE or e.rows or e.removed]

    def wait_for(self, n: int, timeout: float = 20.0) -> list[gw.SubscribeEvent]:
        deadline = time.monotonic() + timeout
        while len(self.data_events()) < n:
            assert time.monotonic() < deadline, f"only {len(self.events)} event(s), wanted {n}; error={self.error}"
            time.sleep(0.02)
        return self.data_events()

    def close(self):
        self.call.cancel()
        self.channel.close()


def restate_and_refresh(system, day, gateway="cache_gateway", leads=3):
    r = httpx.post(f"{system.sandbox_url}/_sandbox/restate",
                   json={"account_id": SYNTH, "date": day, "actions_delta": {"lead": str(leads)}}, timeout=10)
    assert r.status_code == 200, r.text
    with grpc.insecure_channel(system.processes[gateway].address) as channel:
        reply = cache_gateway_pb2_grpc.CacheGatewayStub(channel).Refresh(
            gw.RefreshRequest(account_id=SYNTH, since=day, until=day, force=True), metadata=md(system), timeout=60)
    assert reply.rows_changed > 0
    return reply.version


def test_a_change_through_one_gateway_reaches_subscribers_on_both_and_no_one_else(system):
    a = Collector(system, "cache_gateway", SYNTH)
    snap_a = a.wait_for(1)[0]
    b = Collector(system, "cache_gateway_b", SYNTH)
    snap_b = b.wait_for(1)[0]
    other = Collector(system, "cache_gateway_b", OTHER)
    assert snap_a.kind == gw.SubscribeEvent.SNAPSHOT and snap_a.rows
    assert snap_a.version == snap_b.version and snap_a.rows == snap_b.rows  # scores may land in between
    other.wait_for(1)

    day = (YESTERDAY - timedelta(days=3)).isoformat()
    version = restate_and_refresh(system, day)
    change_a, change_b = a.wait_for(2)[1], b.wait_for(2)[1]
    assert change_a.kind == change_b.kind == gw.SubscribeEvent.CHANGE
    assert change_a.version == change_b.version == version > snap_a.version
    assert {r.date_start for r in change_a.rows} == {day}
    assert change_a.rows == change_b.rows
    time.sleep(0.5)
    assert len(other.events) == 1  # the other account's subscriber got nothing
    # the restated ads were rescored from the new version, and the score reached both subscribers
    restated_ads = {r.ad_id for r in change_a.rows}
    for c in (a, b):
        deadline = time.monotonic() + 20
        while not any(f.ad_id in restated_ads and f.insights_version == version
                      for e in c.events for f in e.fatigue):
            assert time.monotonic() < deadline, "no fatigue update reached the subscriber"
            time.sleep(0.05)
    versions = [e.version for e in a.events]
    assert versions == sorted(versions)
    for c in (a, b, other):
        c.close()


def test_resume_from_last_version_delivers_every_change_once(system):
    first = Collector(system, "cache_gateway", SYNTH)
    last = first.wait_for(1)[-1].version
    first.close()
    days = [(YESTERDAY - timedelta(days=d)).isoformat() for d in (1, 2, 5)]
    versions = [restate_and_refresh(system, d, gateway="cache_gateway_b") for d in days]
    resumed = Collector(system, "cache_gateway", SYNTH, from_version=last)
    replayed = resumed.wait_for(3)[:3]  # one CHANGE per version, in order, each with its own day
    assert [e.kind for e in replayed] == [gw.SubscribeEvent.CHANGE] * 3
    assert [e.version for e in replayed] == versions
    assert [sorted({r.date_start for r in e.rows}) for e in replayed] == [[d] for d in days]
    # and live changes continue after the replay, strictly increasing
    later = restate_and_refresh(system, days[0])
    assert resumed.wait_for(4)[3].version == later > versions[-1]
    resumed.close()


def test_store_restart_mid_stream_loses_nothing(system):
    if system.mongo is None:
        pytest.skip("restarts only the embedded store")
    sub = Collector(system, "cache_gateway", SYNTH)
    seen = [sub.wait_for(1)[0].version]
    system.mongo.stop()
    time.sleep(0.5)
    system.mongo.start()
    day = (YESTERDAY - timedelta(days=4)).isoformat()
    deadline = time.monotonic() + 60
    while True:  # the gateway reconnects on its own; its first calls may still fail
        try:
            version = restate_and_refresh(system, day, leads=1)
            break
        except (grpc.RpcError, AssertionError):
            assert time.monotonic() < deadline
            time.sleep(0.5)
    deadline = time.monotonic() + 30
    while not any(e.version >= version for e in sub.data_events()):
        if sub.error is not None:  # the stream ended (UNAVAILABLE): resume from the last version
            assert sub.error.code() == grpc.StatusCode.UNAVAILABLE
            seen += [e.version for e in sub.data_events()[1:]]
            sub.close()
            sub = Collector(system, "cache_gateway", SYNTH, from_version=seen[-1])
            sub.wait_for(1)
        assert time.monotonic() < deadline, "the change never arrived"
        time.sleep(0.05)
    seen += [e.version for e in sub.data_events() if e.version not in seen]
    assert seen == sorted(set(seen)) and seen[-1] == version
    sub.close()


def test_a_restated_day_rescores_the_ad_and_the_new_score_reaches_the_subscriber(system):
    sub = Collector(system, "cache_gateway", SYNTH)
    deadline = time.monotonic() + 20
    while not (sub.events and sub.events[0].fatigue):  # scores from earlier writes are in the snapshot
        assert time.monotonic() < deadline, "snapshot carried no stored scores"
        time.sleep(0.1)
        if sub.events and not sub.events[0].fatigue:
            sub.close()
            sub = Collector(system, "cache_gateway", SYNTH)
    before = {f.ad_id: f for f in sub.events[0].fatigue}
    ad_id = sorted(before)[0]
    days = [(YESTERDAY - timedelta(days=d)).isoformat() for d in (0, 1, 2)]
    for d in days:  # the ad's link clicks of its last three days are restated to zero
        r = httpx.post(f"{system.sandbox_url}/_sandbox/restate", timeout=10, json={
            "account_id": SYNTH, "date": d, "ad_id": ad_id, "set": {"inline_link_clicks": 0, "clicks": 0}})
        assert r.status_code == 200, r.text
    with grpc.insecure_channel(system.processes["cache_gateway_b"].address) as channel:
        version = cache_gateway_pb2_grpc.CacheGatewayStub(channel).Refresh(
            gw.RefreshRequest(account_id=SYNTH, since=days[-1], until=days[0], force=True),
            metadata=md(system), timeout=60).version
    deadline = time.monotonic() + 20
    while True:
        after = [f for e in sub.events for f in e.fatigue if f.ad_id == ad_id and f.insights_version == version]
        if after:
            break
        assert time.monotonic() < deadline, "the rescored ad never reached the subscriber"
        time.sleep(0.05)
    old, new = before[ad_id], after[-1]
    assert new.insights_version > old.insights_version
    assert list(new.components) != list(old.components)  # CTR of the recent window collapsed
    sub.close()


def test_shutdown_ends_streams_with_unavailable_and_the_process_exits(system):
    system.add_gateway_replica("cache_gateway_leaving")
    sub = Collector(system, "cache_gateway_leaving", SYNTH)
    last = sub.wait_for(1)[0].version
    proc = system.processes["cache_gateway_leaving"]
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    sub.thread.join(10)
    assert sub.error is not None and sub.error.code() == grpc.StatusCode.UNAVAILABLE
    assert f"from_version={last}" in sub.error.details()
    proc.proc.wait(15)
    assert proc.proc.returncode == 0 and time.monotonic() - started < 15
    sub.close()


def test_resume_from_an_unknown_future_version_starts_afresh_and_negative_is_refused(system):
    fresh = Collector(system, "cache_gateway", SYNTH, from_version=10**12)
    event = fresh.wait_for(1)[0]
    assert event.kind == gw.SubscribeEvent.SNAPSHOT and event.rows
    fresh.close()
    bad = Collector(system, "cache_gateway", SYNTH, from_version=-1)
    bad.thread.join(10)
    assert bad.error is not None and bad.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad.close()


def test_a_snapshot_is_not_followed_by_scores_it_already_carried(system):
    sub = Collector(system, "cache_gateway", SYNTH)
    snap = sub.wait_for(1)[0]
    time.sleep(1.0)
    repeated = [f for e in sub.events[1:] for f in e.fatigue
                if any(f.ad_id == g.ad_id and f.insights_version <= g.insights_version for g in snap.fatigue)]
    assert repeated == []
    sub.close()
