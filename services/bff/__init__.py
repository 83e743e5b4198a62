"""Backend-for-frontend of the /ad-fatigue page: an ASGI app that is a gRPC client of CacheGateway only."""
