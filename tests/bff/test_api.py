"""The BFF's HTTP API over a real socket, in front of the real system: good answers and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import jwt
import pytest

from services.bff.sign_in import link_key, mint_sign_in_link
from tests.bff.conftest import (
    REAL, SINCE, SYNTH, UNTIL, last_delivered_day, restate_and_refresh, signed_in_client,
)

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"


def problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body = answer.json()
    assert body["status"] == status and body["title"] and len(body["detail"]) > 10
    return body


def fatigue(client, account=REAL, since=SINCE, until=UNTIL, **kw):
    return client.get(f"/api/v1/accounts/{account}/fatigue", params={"since": since, "until": until}, **kw)


# -- sign-in and session ----------------------------------------------------------------------------

def test_without_a_session_every_endpoint_says_how_to_sign_in(base_url):
    with httpx.Client(base_url=base_url) as anon:
        for path in ("/api/v1/session", "/api/v1/accounts", f"/api/v1/accounts/{REAL}/fatigue?since={SINCE}&until={UNTIL}",
                     f"/api/v1/accounts/{REAL}/events?since={SINCE}&until={UNTIL}"):
            assert "sign-in link" in problem(anon.get(path), 401)["detail"]


def test_a_forged_or_foreign_cookie_is_not_a_session(base_url, client):
    cookie = client.cookies["adfatigue_session"]
    payload, _, signature = cookie.rpartition(".")
    for forged in (cookie[:-3] + "AAA", "e30=.AAAA.BBBB", payload + "." + "x" * len(signature)):
        with httpx.Client(base_url=base_url, cookies={"adfatigue_session": forged}) as other:
            problem(other.get("/api/v1/session"), 401)


def test_sign_in_link_works_once_and_sets_a_strict_http_only_cookie(system, base_url):
    link = system.sign_in_link("once", ["act_1001"], [])
    with httpx.Client() as browser:
        first = browser.get(link, follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/ad-fatigue"
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # http://127.0.0.1
        assert browser.get(base_url + "/api/v1/session").json()["user"] == "once"
    with httpx.Client() as thief:
        assert "used already" in problem(thief.get(link, follow_redirects=False), 401)["detail"]
        # a browser following the link gets the same words as a page (a new-user trial saw raw JSON)
        page = thief.get(link, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
        assert "used already" in page.text and "adfatigue sign-in" in page.text and "<script" not in page.text


def test_the_sign_in_command_prints_a_new_one_time_link(system, base_url):
    """`adfatigue sign-in` (finding of a new-user trial: a used link could only be replaced by restarting `up`)."""
    def sign_in(*args):
        env = {**os.environ, "JWT_HS256_SECRET": system.jwt_secret}
        return subprocess.run([sys.executable, "-m", "services.cli.main", "sign-in", *args, "--data-dir",
                               str(system.config.data_dir)], capture_output=True, text=True, timeout=60, env=env)
    out = sign_in("--account", "act_1001", "--no-operator", "--ttl", "600")
    assert out.returncode == 0, out.stderr
    link = out.stdout.strip()
    assert link.startswith(base_url + "/ad-fatigue/sign-in?token=")
    with httpx.Client() as browser:
        assert browser.get(link, follow_redirects=False).status_code == 303
        me = browser.get(base_url + "/api/v1/session").json()
        assert me["user"] == "local" and me["accounts"] == ["act_1001"] and not me.get("roles"), me
    with httpx.Client() as again:
        assert "used already" in problem(again.get(link, follow_redirects=False), 401)["detail"]
    for bad, says in ((["--ttl", "0"], "--ttl 0"), (["--account", "act_x"], "act_<digits>")):
        refused = sign_in(*bad)
        assert refused.returncode == 2 and says in refused.stderr


@pytest.mark.parametrize("make", [
    lambda s: mint_sign_in_link("", "another-secret", "mallory", ["*"]),
    lambda s: mint_sign_in_link("", s.jwt_secret, "late", ["*"], ttl_s=-100),
    lambda s: "/ad-fatigue/sign-in?token=" + jwt.encode({"sub": "x", "accounts": ["*"], "jti": "1",
                                                         "exp": int(time.time()) + 60}, link_key(s.jwt_secret)),
    lambda s: "/ad-fatigue/sign-in?token=not-a-token",
    # malformed claims of a correctly signed link (finding: accepted, then every API call answered 500)
    *[lambda s, claims=claims: "/ad-fatigue/sign-in?token=" + jwt.encode(
        {"purpose": "adfatigue-bff-sign-in", "jti": claims["sub"] or "empty", "accounts": ["*"],
         "exp": int(time.time()) + 60, **claims}, link_key(s.jwt_secret))
      for claims in ({"sub": "a", "roles": "operator"}, {"sub": "b", "roles": ["admin"]},
                     {"sub": "c", "roles": {"operator": 1}}, {"sub": ""})],
])
def test_forged_expired_or_foreign_sign_in_tokens_are_refused(system, base_url, make):
    with httpx.Client(base_url=base_url) as browser:
        problem(browser.get(make(system), follow_redirects=False), 401)
        problem(browser.get("/api/v1/session"), 401)


def test_sign_in_never_redirects_off_the_page(system, base_url):
    link = system.sign_in_link("r", ["*"], [], next_path="//evil.example/ad-fatigue")
    with httpx.Client() as browser:
        assert browser.get(link, follow_redirects=False).headers["location"] == "/ad-fatigue"


def test_session_tells_user_accounts_and_csrf_token(client):
    body = client.get("/api/v1/session").json()
    assert body["user"] == "tester" and body["accounts"] == ["*"] and body["operator"] is True
    assert len(body["csrf_token"]) >= 20


# -- accounts and the page model ---------------------------------------------------------------------

def test_accounts_lists_name_currency_and_time_zone(client):
    fatigue(client)  # the account is known once read
    accounts = {a["id"]: a for a in client.get("/api/v1/accounts").json()["accounts"]}
    assert accounts[REAL]["currency"] == "MYR" and accounts[REAL]["timezone"] and accounts[REAL]["known"]
    assert accounts[REAL]["name"] == "meta_ads_daily_account_a"  # the sandbox names a CSV account by its file


def test_accounts_of_a_limited_user_are_only_theirs(system, base_url, client):
    fatigue(client)
    with signed_in_client(system, base_url, "alice", ["act_1001"], []) as alice:
        assert [a["id"] for a in alice.get("/api/v1/accounts").json()["accounts"]] == [REAL]


def test_page_model_of_the_real_account_at_one_version(client):
    answer = fatigue(client)
    assert answer.status_code == 200, answer.text
    model = answer.json()
    assert answer.headers["x-data-version"] == str(model["version"]) and model["version"] > 0
    assert model["account"]["currency"] == "MYR" and model["range"] == {"since": SINCE, "until": UNTIL}
    ads = model["ads"]
    assert len(ads) == 55 and model["summary"]["ads"] == 55
    assert sum(model["summary"]["per_level"].values()) == 55
    assert all(a["scored_version"] is None or a["scored_version"] <= model["version"] for a in ads)
    video = [a for a in ads if a["ad_name"] == "Ad 001 Video 003"]
    assert video and any(a["level"] in ("warning", "critical") for a in video)
    top = next(a for a in video if a["level"] in ("warning", "critical"))
    assert top["reasons"] and any("link ctr" in r.lower() and "%" in r and "→" in r for r in top["reasons"])
    ctr = next(c for c in top["components"] if c["name"] == "ctr_decay")
    assert ctr["before_text"].endswith(" %") and "→" in ctr["text"] and ctr["before"] > ctr["after"]
    cpm = next(c for c in top["components"] if c["name"] == "cpm_inflation")
    assert cpm["before_text"].endswith(" MYR")
    assert float(top["spend"]) > 0 and top["impressions"] > 0 and top["campaign_name"] and top["adset_name"]
    series = top["series"]
    assert len(series["impressions"]) == len(series["link_ctr_pct"]) == len(series["cpm"]) >= top["delivery_days"]
    assert model["freshness"]["status"] in ("fresh", "stale_revalidating", "stale_upstream_error")
    assert "final" in model["freshness"]["classes"]
    at_risk = sum(float(a["spend"]) for a in ads if a["level"] in ("warning", "critical"))
    assert abs(float(model["summary"]["spend_at_risk"]) - at_risk) < 0.01


@pytest.mark.parametrize("since,until,words", [
    ("2026-02-30", "2026-03-01", "not a calendar date"),
    ("2026-03-01", "2026-02-01", "before since"),
    ("yesterday", "2026-03-01", "since"),
    ("2026-03-01", "", "until"),
    ("2020-01-01", "2026-01-01", "37 months"),
    ("2021-01-01", "2021-01-31", "older than Meta keeps"),
])
def test_bad_dates_are_400_with_what_to_do(client, since, until, words):
    assert words in problem(fatigue(client, since=since, until=until), 400)["detail"]


def test_missing_dates_are_400(client):
    problem(client.get(f"/api/v1/accounts/{REAL}/fatigue"), 400)


@pytest.mark.parametrize("account", ["act_abc", "act_", "12-3", "act_" + "9" * 30])
def test_malformed_account_ids_are_400(client, account):
    problem(fatigue(client, account=account), 400)


def test_unknown_account_is_404(client):
    assert "act_424242" in problem(fatigue(client, account="act_424242"), 404)["detail"]


def test_another_users_account_is_403_in_plain_words(system, base_url):
    with signed_in_client(system, base_url, "alice", ["act_1001"], []) as alice:
        body = problem(fatigue(alice, account=SYNTH, since="2026-11-01", until="2026-11-07"), 403)
        assert "alice may not read act_900000000001" in body["detail"]
        events = alice.get(f"/api/v1/accounts/{SYNTH}/events", params={"since": SINCE, "until": UNTIL})
        problem(events, 403)


# -- refresh (state-changing: CSRF) ----------------------------------------------------------------

def test_refresh_needs_the_csrf_token(client):
    url = f"/api/v1/accounts/{REAL}/refresh"
    params = {"since": "2026-04-20", "until": "2026-04-29"}
    problem(client.post(url, params=params), 403)
    problem(client.post(url, params=params, headers={"X-CSRF-Token": "guess"}), 403)
    token = client.get("/api/v1/session").json()["csrf_token"]
    problem(client.post(url, params=params, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"}), 403)
    same_host_other_scheme = "https://" + client.base_url.netloc.decode()  # attacker trial: scheme was ignored
    problem(client.post(url, params=params, headers={"X-CSRF-Token": token, "Origin": same_host_other_scheme}), 403)
    assert client.post(url, params=params, headers={"X-CSRF-Token": token, "Origin": str(client.base_url).rstrip("/")}
                       ).status_code == 200
    answer = client.post(url, params=params, headers={"X-CSRF-Token": token})
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] > 0


def test_a_post_without_a_session_is_401_like_a_read(base_url):
    """Attacker trial finding: it was 403 'missing X-CSRF-Token', which sends a person to the wrong fix."""
    with httpx.Client(base_url=base_url) as anon:
        for path in (f"/api/v1/accounts/{REAL}/refresh?since=2026-04-20&until=2026-04-29", "/api/v1/session/sign-out"):
            assert "sign-in link" in problem(anon.post(path, headers={"X-CSRF-Token": "x"}), 401)["detail"]


def test_forced_refresh_is_for_operators(system, base_url):
    with signed_in_client(system, base_url, "bob", ["act_1001"], []) as bob:
        token = bob.get("/api/v1/session").json()["csrf_token"]
        answer = bob.post(f"/api/v1/accounts/{REAL}/refresh", params={"since": "2026-04-20", "until": "2026-04-29",
                                                                      "force": "true"},
                          headers={"X-CSRF-Token": token})
        assert "operators" in problem(answer, 403)["detail"]


def test_sign_out_needs_csrf_and_ends_the_session(system, base_url):
    with signed_in_client(system, base_url, "carol", ["*"], []) as carol:
        problem(carol.post("/api/v1/session/sign-out"), 403)
        token = carol.get("/api/v1/session").json()["csrf_token"]
        copied = carol.cookies["adfatigue_session"]
        assert carol.post("/api/v1/session/sign-out", headers={"X-CSRF-Token": token}).status_code == 204
        problem(carol.get("/api/v1/session"), 401)
    with httpx.Client(base_url=base_url, cookies={"adfatigue_session": copied}) as replay:  # attacker trial finding
        assert "signed out" in problem(replay.get("/api/v1/session"), 401)["detail"]


# -- events (SSE) --------------------------------------------------------------------------------------

def read_events(client, n: int, headers=None, params=None, timeout=30.0, with_retry=False,
                stop_at: str = "", into: list | None = None) -> list[dict]:
    """The first ``n`` SSE events (dicts of their fields); a block with only ``retry`` counts if ``with_retry``.
    ``into``: the list to append each event to as it arrives (another thread can watch it grow)."""
    out, current = (into if into is not None else []), {}
    query = {"since": SINCE, "until": UNTIL, **(params or {})}
    with client.stream("GET", f"/api/v1/accounts/{REAL}/events", params=query, headers=headers or {},
                       timeout=timeout) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line == "":
                if current and (with_retry or set(current) != {"retry"}):
                    out.append(current)
                    current = {}
                    if len(out) >= n or (stop_at and out[-1].get("event") == stop_at):
                        return out
                current = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")
    return out


def test_events_start_with_a_snapshot_then_status_each_with_the_version(client):
    model = fatigue(client).json()
    retry, snapshot, status = read_events(client, 3, with_retry=True)
    assert int(retry["retry"]) > 0  # first, before any event
    assert snapshot["event"] == "snapshot" and int(snapshot["id"]) >= model["version"]
    assert len(json.loads(snapshot["data"])["ads"]) == 55
    assert status["event"] == "status" and json.loads(status["data"])["gateway"] == "live"
    assert status["id"] == snapshot["id"]


def test_resuming_at_the_current_version_repeats_nothing(client):
    version = fatigue(client).json()["version"]
    (first,) = read_events(client, 1, headers={"Last-Event-ID": str(version)})
    assert first["event"] == "status" and first["id"] == str(version)


def test_resuming_from_an_older_version_catches_up_without_repeating(client):
    version = fatigue(client).json()["version"]
    (first,) = read_events(client, 1, params={"last_event_id": "0"})
    assert first["event"] in ("jump", "change") and int(first["id"]) == version


@pytest.mark.parametrize("value,words", [("abc", "not a version number"), ("-1", "not a version number"),
                                         ("1.5", "not a version number"), ("999999999", "newer than the data")])
def test_bad_last_event_id_is_400(client, value, words):
    answer = client.get(f"/api/v1/accounts/{REAL}/events", params={"since": SINCE, "until": UNTIL},
                        headers={"Last-Event-ID": value})
    assert words in problem(answer, 400)["detail"]


@pytest.mark.parametrize("value", ["\u00b3", "\u2460", "\u0663"])  # superscript three, circled one, Arabic-Indic 3
def test_a_last_event_id_of_non_ascii_digits_is_400(client, value):
    """Finding (fault trial): "³" passed str.isdigit() and int() raised (HTTP 500); "٣" was taken as version 3."""
    answer = client.get(f"/api/v1/accounts/{REAL}/events",
                        params={"since": SINCE, "until": UNTIL, "last_event_id": value})
    assert "not a version number" in problem(answer, 400)["detail"]


# -- transport: headers, compression, OpenAPI, unknown paths -------------------------------------------

def test_security_headers_on_api_and_page(client):
    for path in ("/api/v1/session", "/api/v1/openapi.json", "/ad-fatigue/sign-in?token=x", "/ad-fatigue"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_openapi_document_is_published_with_every_endpoint(base_url):
    doc = httpx.get(base_url + "/api/v1/openapi.json").json()
    paths = set(doc["paths"])
    assert {"/api/v1/accounts", "/api/v1/accounts/{act}/fatigue", "/api/v1/accounts/{act}/events",
            "/api/v1/accounts/{act}/refresh", "/api/v1/session"} <= paths


def test_unknown_endpoint_and_wrong_method_are_problems(client):
    problem(client.get("/api/v1/nothing-here"), 404)
    problem(client.delete("/api/v1/accounts"), 405)


def test_a_long_unknown_path_is_not_echoed_back_whole(client):
    """Attacker trial finding: a 40 KB path came back twice (detail and instance) in the 404."""
    answer = client.get("/api/v1/" + "a" * 40_000)
    body = problem(answer, 404)
    assert len(answer.content) < 1_000 and len(body["instance"]) <= 201, len(answer.content)


def test_gateway_down_is_503_with_retry_after(system, tmp_path):
    """A second BFF pointed at a port where nothing listens."""
    from services.cli.service_process import ServiceProcess
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    bff = ServiceProcess("bff_dead", "services.bff", ["--port", "0", "--gateway", f"127.0.0.1:{dead}"],
                         tmp_path / "bff.log", {"JWT_HS256_SECRET": system.jwt_secret,
                                                "BFF_GATEWAY_TIMEOUT_S": "3"}).start()
    try:
        base = f"http://{bff.address}"
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get(mint_sign_in_link(base, system.jwt_secret, "t", ["*"]).removeprefix(base)).status_code == 303
            answer = fatigue(c)
            body = problem(answer, 503)
            assert int(answer.headers["retry-after"]) >= 1 and "gateway" in body["detail"]
            assert str(dead) not in body["detail"] and "UNKNOWN" not in body["detail"], body  # no core text
    finally:
        bff.stop()


def test_a_live_change_applied_to_the_snapshot_equals_a_fresh_read(system, client):
    """The stream's change (rows of the gateway's CHANGE + scores at that version) rebuilds the same model as
    reading the whole range again."""
    import threading
    events: list[dict] = []

    def listen():  # snapshot, status..., change; each event lands in ``events`` as it arrives
        read_events(client, 10, timeout=60, stop_at="change", into=events)

    model = fatigue(client).json()
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    deadline = time.monotonic() + 30
    while len(events) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    ad = model["ads"][1]
    day = last_delivered_day(ad)
    restated = httpx.post(f"{system.sandbox_url}/_sandbox/restate",
                          json={"account_id": REAL, "date": day, "ad_id": ad["ad_id"],
                                "set": {"spend": "777.77", "inline_link_clicks": 3}})
    assert restated.status_code == 200, restated.text
    csrf = client.get("/api/v1/session").json()["csrf_token"]
    done = client.post(f"/api/v1/accounts/{REAL}/refresh", params={"since": day, "until": day, "force": "true"},
                       headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json()["rows_changed"] >= 1
    listener.join(60)
    live = events[0]
    assert live["event"] == "snapshot"
    state = json.loads(live["data"])
    for e in events[1:]:
        if e["event"] == "change":
            change = json.loads(e["data"])
            assert change["from_version"] == state["version"]
            by_id = {a["ad_id"]: a for a in state["ads"]}
            by_id.update({a["ad_id"]: a for a in change["ads"]})
            state = {**state, "version": change["version"], "summary": change["summary"],
                     "ads": [by_id[i] for i in change["order"]]}
    assert state["version"] == done.json()["version"]
    fresh = fatigue(client).json()
    assert fresh["version"] == state["version"]
    assert fresh["ads"] == state["ads"] and fresh["summary"] == state["summary"]
    changed = next(a for a in state["ads"] if a["ad_id"] == ad["ad_id"])
    assert changed["spend"] != ad["spend"]


@pytest.mark.parametrize("name", ["%00", "a" * 5000, "index.html%00.js", "..%2f..%2fpyproject.toml"])
def test_a_bad_asset_name_is_404_problem_details_not_500(base_url, name):
    """Finding: a NUL or an over-long asset name answered 500 (ValueError / OSError) to anybody."""
    with httpx.Client(base_url=base_url) as anon:
        assert "no such" in problem(anon.get(f"/ad-fatigue/assets/{name}"), 404)["detail"]


def test_a_stream_opened_before_sign_out_delivers_nothing_after_it(system, base_url, client):
    """Attacker trial finding: an open SSE stream on a copied cookie kept delivering changes after sign-out."""
    import threading
    with signed_in_client(system, base_url, "erin", ["*"], []) as erin:
        events: list[dict] = []
        with httpx.Client(base_url=base_url, cookies={"adfatigue_session": erin.cookies["adfatigue_session"]},
                          timeout=60) as copy:
            listener = threading.Thread(target=lambda: read_events(copy, 20, timeout=60, into=events), daemon=True)
            listener.start()
            deadline = time.monotonic() + 30
            while not any(e.get("event") == "snapshot" for e in events):
                assert time.monotonic() < deadline, events
                time.sleep(0.05)
            csrf = erin.get("/api/v1/session").json()["csrf_token"]
            assert erin.post("/api/v1/session/sign-out", headers={"X-CSRF-Token": csrf}).status_code == 204
            seen = len(events)
            ad = fatigue(client).json()["ads"][2]
            restate_and_refresh(system, base_url, ad["ad_id"], last_delivered_day(ad), "555.55")
            listener.join(60)
    after = events[seen:]
    assert not any(e.get("event") in ("change", "jump", "snapshot") for e in after), after
    assert after and after[-1]["event"] == "status" and json.loads(after[-1]["data"])["session"] == "ended", after
