"""ScaleDet: multi-dataset detection with text-embedding label spaces (Chen et al., CVPR 2023)."""

__version__ = "0.1.0"
