"""harness.catalog."""
