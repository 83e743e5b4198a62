"""Code shared by every service: typed rows, settings, gRPC serving, dates."""
