"""gRPC status -> HTTP problem details (pure unit test of services/bff/problems.py)."""

from __future__ import annotations

import grpc
import pytest

from services.bff.problems import problem_from_rpc
from services.common.error_boundary import NO_TRANSPARENT_RETRY


def rpc_error(code: grpc.StatusCode, details: str, trailers=()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details)


@pytest.mark.parametrize("code,status", [
    (grpc.StatusCode.INVALID_ARGUMENT, 400), (grpc.StatusCode.FAILED_PRECONDITION, 400),
    (grpc.StatusCode.UNAUTHENTICATED, 401), (grpc.StatusCode.PERMISSION_DENIED, 403),
    (grpc.StatusCode.NOT_FOUND, 404), (grpc.StatusCode.ABORTED, 409), (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (grpc.StatusCode.UNAVAILABLE, 503), (grpc.StatusCode.DEADLINE_EXCEEDED, 504), (grpc.StatusCode.UNKNOWN, 500),
])
def test_status_mapping_keeps_the_gateways_words(code, status):
    answered = rpc_error(code, "what went wrong, and what to do", NO_TRANSPARENT_RETRY)  # the gateway's trailer
    problem = problem_from_rpc(answered, "act_1 2026-01-01..2026-01-31")
    assert problem.status == status
    assert problem.detail == "act_1 2026-01-01..2026-01-31: what went wrong, and what to do"
    assert problem.body("/x")["grpc_status"] == code.name


def test_rate_limit_carries_retry_after_from_the_trailer():
    problem = problem_from_rpc(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "Meta rate limit",
                                         [("retry-after-s", "720")]), "act_1")
    assert problem.headers["Retry-After"] == "720"
    default = problem_from_rpc(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "Meta rate limit"), "act_1")
    assert int(default.headers["Retry-After"]) > 0


def test_unreachable_gateway_is_503_saying_so():
    problem = problem_from_rpc(rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"), "x")
    assert problem.status == 503 and "cannot be reached" in problem.detail and problem.headers["Retry-After"]


def test_transport_text_is_never_shown():
    """Attacker trial finding: the 503 detail carried gRPC core text (the gateway's address, 'UNKNOWN')."""
    core = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50999: Failed to connect to "
            "remote host: Connection refused")
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        detail = problem_from_rpc(rpc_error(code, core), "act_1").detail
        assert "127.0.0.1" not in detail and "UNKNOWN" not in detail and "ipv4" not in detail, detail


def test_our_own_deadline_running_out_says_what_to_do():
    """Finding: with the engine stalled the page got '504 ...: Deadline Exceeded' and no Retry-After."""
    problem = problem_from_rpc(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), "act_1")
    assert problem.status == 504 and "retry in a few seconds" in problem.detail
    assert problem.headers["Retry-After"] == "5"
