"""gRPC method handlers for CacheGateway whose unary responses may be raw bytes.

The generated ``add_CacheGatewayServicer_to_server`` serializes a message
object; these handlers accept either a message or already-serialized bytes
(an L1 hit), so cached answers go out without a decode/encode round trip.
"""

from __future__ import annotations

import grpc

from services.common.pb.adfatigue.v1 import cache_gateway_pb2 as gw

SERVICE_NAME = gw.DESCRIPTOR.services_by_name["CacheGateway"].full_name


def _serialize(message) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def add_cache_gateway_to_server(servicer, server: grpc.aio.Server) -> None:
    unary = {
        "GetInsights": gw.GetInsightsRequest,
        "GetFatigue": gw.GetFatigueRequest,
        "Refresh": gw.RefreshRequest,
        "GetStats": gw.GetStatsRequest,
        "ListAccounts": gw.ListAccountsRequest,
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name), request_deserializer=req.FromString, response_serializer=_serialize
        )
        for name, req in unary.items()
    }
    handlers["Subscribe"] = grpc.unary_stream_rpc_method_handler(
        servicer.Subscribe, request_deserializer=gw.SubscribeRequest.FromString, response_serializer=_serialize
    )
    generic = grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
