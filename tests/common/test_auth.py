"""Bearer JWT verification: claims, errors a person can act on, and the verified-token cache."""

import http.server
import json
import threading
import time

import grpc
import jwt
import pytest

from services.common.auth import AuthError, JwtVerifier, ServiceToken, mint_token, mint_user_token, require_account

SECRET = "a-test-secret-of-at-least-thirty-two-bytes"


def test_claims_become_a_principal():
    p = JwtVerifier(SECRET, ["HS256"]).verify(mint_token(SECRET, "bff", ["act_1", "2"], ["operator"]))
    assert p.subject == "bff" and p.accounts == {"1", "2"} and p.is_operator
    require_account(p, "1")
    with pytest.raises(AuthError) as err:
        require_account(p, "3")
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED and "act_3" in err.value.message


@pytest.mark.parametrize("metadata, words", [
    ((), "missing"), ((("authorization", "Basic abc"),), "Bearer"), ((("authorization", "Bearer x.y.z"),), "rejected"),
])
def test_bad_metadata_is_unauthenticated(metadata, words):
    with pytest.raises(AuthError) as err:
        JwtVerifier(SECRET, ["HS256"]).authenticate(metadata)
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED and words in err.value.message


def test_a_cached_token_is_still_refused_once_it_expires():
    verifier = JwtVerifier(SECRET, ["HS256"], leeway_s=0)
    token = mint_token(SECRET, "bff", ["*"], ttl_s=1)
    assert verifier.verify(token).subject == "bff"
    assert token in verifier._verified  # the signature is not checked again ...
    time.sleep(2.1)  # JWT exp has one-second resolution
    with pytest.raises(AuthError) as err:  # ... but the expiry is
        verifier.verify(token)
    assert "expired" in err.value.message
    assert token not in verifier._verified


def test_the_cache_is_bounded():
    verifier = JwtVerifier(SECRET, ["HS256"], cache_size=3)
    for i in range(10):
        verifier.verify(mint_token(SECRET, f"caller-{i}", ["*"]))
    assert len(verifier._verified) == 3


@pytest.mark.parametrize("entry", ["act_*", "123", "ACT_1", "act_1 ", "act_", "*x", 7, "act_" + "9" * 30])
def test_account_entries_must_be_exact_ids_or_the_wildcard(entry):
    """Finding: an ``act_*`` entry was read as ``*`` and could read every account."""
    token = jwt.encode({"sub": "x", "accounts": [entry], "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError) as err:
        JwtVerifier(SECRET, ["HS256"]).verify(token)
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "act_<digits>" in err.value.message and len(err.value.message) < 400


def test_unknown_roles_are_refused():
    token = jwt.encode({"sub": "x", "accounts": ["*"], "roles": ["admin"], "exp": int(time.time()) + 60}, SECRET)
    with pytest.raises(AuthError) as err:
        JwtVerifier(SECRET, ["HS256"]).verify(token)
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED and "admin" in err.value.message


def test_the_default_leeway_is_five_seconds_and_a_setting():
    """Finding: tokens expired up to 30 s ago were accepted."""
    expired_10s = jwt.encode({"sub": "x", "accounts": ["*"], "exp": int(time.time()) - 10}, SECRET)
    expired_2s = jwt.encode({"sub": "x", "accounts": ["*"], "exp": int(time.time()) - 2}, SECRET)
    verifier = JwtVerifier.from_env({"JWT_HS256_SECRET": SECRET})
    assert verifier.leeway_s == 5
    with pytest.raises(AuthError) as err:
        verifier.verify(expired_10s)
    assert "expired" in err.value.message
    assert verifier.verify(expired_2s).subject == "x"
    assert JwtVerifier.from_env({"JWT_HS256_SECRET": SECRET, "JWT_LEEWAY_SECONDS": "0"}).leeway_s == 0
    with pytest.raises(ValueError, match="JWT_LEEWAY_SECONDS"):
        JwtVerifier.from_env({"JWT_HS256_SECRET": SECRET, "JWT_LEEWAY_SECONDS": "soon"})


def test_a_user_token_is_short_lived_limited_to_the_users_accounts_and_names_the_bff():
    token = mint_user_token(SECRET, "alice@example.com", ["act_1001", "1002", "act_1001"], ttl_s=120)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["accounts"] == ["act_1001", "act_1002"] and claims["roles"] == []
    assert claims["act"] == {"sub": "bff"} and claims["exp"] - claims["iat"] == 120
    p = JwtVerifier(SECRET, ["HS256"]).verify(token)
    assert p.accounts == {"1001", "1002"} and not p.is_operator and p.caller == "bff>alice@example.com"
    assert not p.may_read("1003")
    for bad in (dict(accounts=["*"]), dict(accounts=[]), dict(accounts=["act_*"]), dict(ttl_s=3600),
                dict(ttl_s=0), dict(user="")):
        args = {"user": "alice", "accounts": ["act_1"], **bad}
        with pytest.raises(ValueError):
            mint_user_token(SECRET, args["user"], args["accounts"], args.get("ttl_s", 300))


def test_service_tokens_carry_their_identity_not_operator():
    token = ServiceToken("scheduler", {"JWT_HS256_SECRET": SECRET}).metadata()[0][1].split()[1]
    p = JwtVerifier(SECRET, ["HS256"]).verify(token)
    assert p.is_service("scheduler") and not p.is_operator and p.may_read("1")
    with pytest.raises(ValueError):
        ServiceToken("root", {"JWT_HS256_SECRET": SECRET})


class _Jwks(http.server.BaseHTTPRequestHandler):
    keys: list[dict] = []

    def do_GET(self):
        body = json.dumps({"keys": self.keys}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_jwks_keys_rotate_without_a_restart():
    from cryptography.hazmat.primitives.asymmetric import rsa

    def keypair(kid):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
        return private, {**public, "kid": kid, "use": "sig", "alg": "RS256"}

    old_private, old_public = keypair("k1")
    new_private, new_public = keypair("k2")
    _Jwks.keys = [old_public]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        verifier = JwtVerifier.from_env({"JWT_JWKS_URL": f"http://127.0.0.1:{server.server_port}/jwks.json",
                                         "JWT_JWKS_COOLDOWN_SECONDS": "0"})
        sign = lambda private, kid: jwt.encode({"sub": kid, "accounts": ["act_1"], "exp": int(time.time()) + 60},
                                               private, algorithm="RS256", headers={"kid": kid})
        assert verifier.verify(sign(old_private, "k1")).subject == "k1"
        _Jwks.keys = [old_public, new_public]  # the identity provider rotates
        assert verifier.verify(sign(new_private, "k2")).subject == "k2"
        with pytest.raises(AuthError) as err:  # a key the JWKS does not list
            verifier.verify(sign(rsa.generate_private_key(public_exponent=65537, key_size=2048), "k9"))
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.shutdown()
        server.server_close()


def test_quoted_cuts_caller_input_to_200_characters():
    from services.common.input_echo import quoted
    assert quoted("act_1") == "'act_1'"
    long = quoted("x" * 10_000)
    assert len(long) <= 200 and long.startswith("'xxx") and "chars)" in long


@pytest.mark.parametrize("roles", [[["operator"]], [{"r": 1}], [7], [None]])
def test_a_role_that_is_not_a_string_is_unauthenticated_not_a_crash(roles):
    """Finding: a list or object in 'roles' raised TypeError (unhashable) -> UNKNOWN on every service."""
    token = jwt.encode({"sub": "x", "accounts": ["act_1"], "roles": roles, "exp": int(time.time()) + 60},
                       SECRET, algorithm="HS256")
    with pytest.raises(AuthError) as err:
        JwtVerifier(SECRET).verify(token)
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED and "roles" in err.value.message


@pytest.mark.parametrize("token, words", [
    ("not.a.jwt", "not a well-formed JWT"),
    (jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "another-secret-of-at-least-32-bytes!!", algorithm="HS256"),
     "signature does not verify"),
    (jwt.encode({"sub": "x"}, SECRET, algorithm="HS256"), "lacks the required claim 'exp'"),
])
def test_a_rejected_token_is_explained_in_words_not_exception_names(token, words):
    with pytest.raises(AuthError) as err:
        JwtVerifier(SECRET).verify(token)
    assert words in err.value.message and "Error" not in err.value.message
