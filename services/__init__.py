"""Ad-fatigue insights platform: gRPC services and their shared code."""
