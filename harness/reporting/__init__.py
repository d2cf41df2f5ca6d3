"""Reports: Markdown/CSV/LaTeX tables and PNG figures rendered from the results store (never recomputed).

Modules: ``cells`` (store -> flat cell frame), ``published`` (paper numbers), ``averages`` (the three
averages over seeds), ``tables`` (Table D / 7 / 8 style tables), ``figures`` (PNGs), ``formats``
(Markdown, CSV, LaTeX, provenance) and ``render`` (the whole report).
"""

from harness.reporting.averages import UnseenRule
from harness.reporting.render import build_report, render_report, write_report

__all__ = ["UnseenRule", "build_report", "render_report", "write_report"]
