"""Bearer JWT verification: claims, errors a person can act on, and the verified-token cache."""

import time

import grpc
import pytest

from services.common.auth import AuthError, JwtVerifier, mint_token, require_account

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
