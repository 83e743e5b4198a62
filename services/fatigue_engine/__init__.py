"""fatigue_engine."""
