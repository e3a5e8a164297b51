"""AND Explorer engine."""
