"""harness.plan."""
