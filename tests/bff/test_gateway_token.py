"""services/bff/gateway_token.py: the gateway token signed with the BFF's own key (production) or HS256 (local).

Unit tests of one module: the tokens are checked with the gateway's own verifier (services/common/auth.py).
"""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.bff.gateway_token import GatewayTokens, signing_algorithm
from services.bff.users import User
from services.common.auth import JwtVerifier


def _pem(private) -> tuple[str, str]:
    key = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return key, public


@pytest.mark.parametrize("private, algorithm", [
    (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    (ec.generate_private_key(ec.SECP256R1()), "ES256"),
])
def test_a_pem_key_signs_asymmetric_tokens_with_its_kid_that_the_gateway_verifies(private, algorithm):
    key, public = _pem(private)
    tokens = GatewayTokens(key, 300, "adfatigue", kid="bff-2026a")
    token = tokens.metadata(User("ann@example.com", ("1001",)))[0][1].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == (algorithm, "bff-2026a")
    principal = JwtVerifier(public, ["RS256", "ES256"], "adfatigue").verify(token)
    assert principal.subject == "ann@example.com" and principal.actor == "bff"
    assert principal.accounts == frozenset({"1001"})


def test_the_local_secret_still_signs_hs256_without_a_kid():
    token = GatewayTokens("local-secret-0123456789-0123456789").metadata(User("local", ("*",), ("operator",)))[0][1][7:]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert JwtVerifier("local-secret-0123456789-0123456789").verify(token).actor == "bff"


def test_a_key_of_another_kind_is_refused_at_start():
    assert signing_algorithm("plain-shared-secret") == "HS256"
    with pytest.raises(ValueError, match="RSA or EC P-256"):
        GatewayTokens(_pem(ec.generate_private_key(ec.SECP384R1()))[0])
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        GatewayTokens("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
