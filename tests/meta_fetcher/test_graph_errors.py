"""The classification table of graph_errors (META_GRAPH_API.md §3), code by code."""

from __future__ import annotations

import grpc
import pytest

from services.meta_fetcher.graph_errors import ErrorClass, GraphApiError, classify, redact

R, T, S, K, P = (ErrorClass.RETRY, ErrorClass.THROTTLED, ErrorClass.SHRINK, ErrorClass.TOKEN_INVALID,
                 ErrorClass.PERMANENT)


@pytest.mark.parametrize("code, subcode, status, transient, message, expected", [
    (1, None, 500, None, "An unknown error occurred", R),
    (1, 99, 500, None, "An unknown error occurred", R),
    (1, None, 500, None, "Please reduce the amount of data you're asking for, then retry your request", S),
    (2, 1504043, 500, True, "", R),
    (2, 1504038, 500, True, "", S),
    (4, 1504022, 400, True, "", T),
    (4, 1504039, 400, True, "", T),
    (17, 2446079, 400, None, "", T),
    (32, None, 400, None, "", T),
    (613, 1487742, 400, None, "", T),
    *[(c, None, 400, None, "", T) for c in range(80000, 80009)],
    (100, None, 400, None, "", P),
    (100, 33, 400, None, "", P),
    (100, 1487534, 400, None, "", S),
    (100, 1504018, 400, None, "", S),
    (190, None, 400, None, "", K),
    (190, 458, 400, None, "", K),
    (190, 460, 400, None, "", K),
    (190, 463, 400, None, "", K),
    (190, 467, 400, None, "", K),
    (2500, None, 400, None, "", K),
    (10, None, 400, None, "", P),
    (200, None, 400, None, "", P),
    (299, None, 400, None, "", P),
    (2635, None, 400, None, "", P),
    (3018, None, 400, None, "", P),
    (12345, None, 400, True, "", R),
    (12345, None, 400, None, "", P),
    (None, None, 502, None, "", R),
    (None, None, 503, None, "", R),
    (None, None, 429, None, "", T),
    (None, None, 404, None, "", P),
])
def test_classify(code, subcode, status, transient, message, expected) -> None:
    assert classify(code, subcode, http_status=status, is_transient=transient, message=message) is expected


@pytest.mark.parametrize("code, subcode, status", [
    (190, 463, grpc.StatusCode.FAILED_PRECONDITION),
    (17, 2446079, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (2, None, grpc.StatusCode.UNAVAILABLE),
    (100, 1487534, grpc.StatusCode.UNAVAILABLE),
    (100, 33, grpc.StatusCode.NOT_FOUND),
    (200, None, grpc.StatusCode.PERMISSION_DENIED),
    (2635, None, grpc.StatusCode.FAILED_PRECONDITION),
    (3018, None, grpc.StatusCode.INVALID_ARGUMENT),
])
def test_each_class_has_a_status_and_names_the_account(code, subcode, status) -> None:
    err = GraphApiError.from_response(400, {"error": {"code": code, "error_subcode": subcode, "message": "m"}},
                                      retry_after_s=120)
    got, message = err.grpc_status("act_77")
    assert got == status and "act_77" in message


def test_error_body_of_any_shape_is_handled() -> None:
    assert GraphApiError.from_response(502, None).error_class is ErrorClass.RETRY
    assert GraphApiError.from_response(400, {"error": "text"}).code is None
    assert GraphApiError.from_response(400, {"error": {"code": "17"}}).code is None
    assert GraphApiError.from_response(400, {"error": {"code": 17, "is_transient": "yes"}}).is_transient is None


def test_redact_hides_tokens_and_query_secrets() -> None:
    text = "GET /v23.0/act_1/insights?access_token=EAAB123&appsecret_proof=abcd&after=X failed for tok-secret-1"
    out = redact(text, ["tok-secret-1"])
    assert "EAAB123" not in out and "abcd" not in out and "tok-secret-1" not in out and "after=X" in out
