"""Tests of services.fatigue_engine (FATIGUE_SPEC.md v1.1)."""
