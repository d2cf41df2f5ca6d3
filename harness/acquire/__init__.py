"""harness.acquire."""
