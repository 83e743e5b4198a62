"""The BFF as its own process: heartbeats, a clean end of open streams on shutdown, the proxy-header sign-in."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from services.bff.sign_in import mint_sign_in_link
from services.cli.service_process import ServiceProcess
from tests.bff.conftest import REAL, SINCE, UNTIL

pytestmark = pytest.mark.e2e


def start_bff(system, tmp_path, name: str, **env) -> ServiceProcess:
    return ServiceProcess(name, "services.bff", ["--port", "0", "--gateway", system.processes["cache_gateway"].address],
                          tmp_path / f"{name}.log", {"JWT_HS256_SECRET": system.jwt_secret, **env}).start()


def test_heartbeats_keep_the_stream_open_and_shutdown_ends_it_cleanly(system, tmp_path):
    bff = start_bff(system, tmp_path, "bff_hb", BFF_HEARTBEAT_S="0.3")
    base = f"http://{bff.address}"
    lines: list[str] = []
    ended = threading.Event()
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            assert c.get(mint_sign_in_link(base, system.jwt_secret, "hb", ["*"]).removeprefix(base)).status_code == 303

            def read():
                with c.stream("GET", f"/api/v1/accounts/{REAL}/events", params={"since": SINCE, "until": UNTIL}) as s:
                    for line in s.iter_lines():
                        lines.append(line)
                ended.set()

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            deadline = time.monotonic() + 30
            while sum(line.startswith(":") for line in lines) < 2:
                assert time.monotonic() < deadline, lines[:5]
                time.sleep(0.1)
            assert any(line.startswith("event: snapshot") for line in lines)
            bff.proc.send_signal(signal.SIGTERM)
            assert ended.wait(15), "the stream did not end on shutdown"
            assert bff.proc.wait(15) == 0
    finally:
        bff.stop()
    assert "Traceback" not in bff.log_path.read_text()


def test_proxy_header_sign_in_believes_only_trusted_peers(system, tmp_path):
    bff = start_bff(system, tmp_path, "bff_proxy", BFF_SIGN_IN="proxy-header",
                    BFF_USER_ACCOUNTS=json.dumps({"ann@example.com": ["act_1001"]}),
                    BFF_PROXY_TRUSTED_IPS="127.0.0.1")
    base = f"http://{bff.address}"
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            session = c.get("/api/v1/session", headers={"X-Forwarded-Email": "ann@example.com"}).json()
            assert session["user"] == "ann@example.com" and session["accounts"] == [REAL]
            assert not session["operator"]
            assert c.get(f"/api/v1/accounts/{REAL}/fatigue", params={"since": SINCE, "until": UNTIL}).status_code == 200
            assert c.get("/api/v1/accounts/act_900000000001/fatigue",
                         params={"since": SINCE, "until": UNTIL}).status_code == 403
            link = mint_sign_in_link(base, system.jwt_secret, "x", ["*"]).removeprefix(base)
            assert httpx.get(base + link, follow_redirects=False).status_code == 400  # links are off
            assert httpx.get(base + "/api/v1/session").status_code == 401
    finally:
        bff.stop()
    untrusted = start_bff(system, tmp_path, "bff_untrusted", BFF_SIGN_IN="proxy-header",
                          BFF_PROXY_TRUSTED_IPS="10.9.9.9")
    try:
        answer = httpx.get(f"http://{untrusted.address}/api/v1/session", headers={"X-Forwarded-Email": "ann@x.com"})
        assert answer.status_code == 401
    finally:
        untrusted.stop()


def test_a_used_sign_in_link_stays_used_when_the_bff_restarts(system, tmp_path):
    """Attacker trial finding: used jtis lived only in the BFF's memory, so after a restart (the key is derived from
    the persistent local secret) a used link signed in again."""
    used = tmp_path / "sign-in-used-links.json"
    link = None
    for run in ("first", "second"):
        bff = start_bff(system, tmp_path, f"bff_links_{run}", BFF_SIGN_IN_USED_LINKS=str(used))
        base = f"http://{bff.address}"
        link = link or mint_sign_in_link(base, system.jwt_secret, "once", ["act_1001"])
        try:
            with httpx.Client(base_url=base, timeout=60) as browser:
                answer = browser.get(link[link.index("/ad-fatigue"):], follow_redirects=False)
        finally:
            bff.stop()
        if run == "first":
            assert answer.status_code == 303, answer.text
        else:
            assert answer.status_code == 401 and "used already" in answer.json()["detail"], answer.text
    assert list(json.loads(used.read_text()).values())[0] > time.time()  # kept until the link's exp


def test_an_unusable_used_links_file_is_503_everywhere_never_500_nor_a_replay(system, tmp_path):
    """Attacker trial findings: with the file damaged, signed-in sessions got 500 (a bug) and a deeply nested file
    made sign-in 500 too; with it unwritable, sign-out was 500. Now 503 with a plain message (the path and the
    OS error are in the log only), and an unrecorded sign-out leaves the session open rather than pretending."""
    used = tmp_path / "sign-in-used-links.json"
    bff = start_bff(system, tmp_path, "bff_links_bad", BFF_SIGN_IN_USED_LINKS=str(used))
    base = f"http://{bff.address}"

    def unavailable(answer: httpx.Response) -> dict:
        assert answer.status_code == 503 and answer.headers["content-type"].startswith("application/problem+json")
        assert str(tmp_path) not in answer.text and "Errno" not in answer.text, answer.text
        return answer.json()

    try:
        with httpx.Client(base_url=base, timeout=60) as browser:
            assert browser.get(mint_sign_in_link(base, system.jwt_secret, "x", ["act_1001"]).removeprefix(base),
                               follow_redirects=False).status_code == 303
            csrf = browser.get("/api/v1/session").json()["csrf_token"]
            # unwritable (a directory where the temporary file goes): sign-out is not recorded, and says so
            blocker = tmp_path / f".{used.name}.{bff.proc.pid}.tmp"
            blocker.mkdir()
            assert "still open" in unavailable(browser.post("/api/v1/session/sign-out",
                                                            headers={"X-CSRF-Token": csrf}))["detail"]
            blocker.rmdir()
            assert browser.get("/api/v1/session").status_code == 200
            for damaged in ("{not json", "[" * 200_000 + "]" * 200_000):
                used.write_text(damaged)
                unavailable(browser.get("/api/v1/session"))
                unavailable(browser.get("/api/v1/accounts"))
                link = mint_sign_in_link(base, system.jwt_secret, "y", ["act_1001"])
                unavailable(httpx.get(link, follow_redirects=False, timeout=60))
                assert used.read_text() == damaged  # nothing overwritten
    finally:
        bff.stop()
    log = bff.log_path.read_text()
    assert "Traceback" not in log
