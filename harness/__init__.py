"""scaledet-harness: the application that benchmarks ScaleDet-style detectors on ODinW."""

__version__ = "0.1.0"
