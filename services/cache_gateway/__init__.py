"""cache_gateway."""
