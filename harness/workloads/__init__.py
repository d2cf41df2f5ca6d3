"""harness.workloads."""
