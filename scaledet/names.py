"""Strict name checks: an unknown name fails naming the valid ones, with a "did you mean" hint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from scaledet.errors import ConfigError


def check_name(kind: str, name: str, valid: Iterable[str], where: str = "") -> str:
    """Return ``name`` if it is in ``valid``, else raise ``ConfigError`` listing the valid names."""
    options = sorted(valid)
    if name in options:
        return name
    prefix = f"{where}: " if where else ""
    raise ConfigError(f"{prefix}unknown {kind} {name!r}{did_you_mean(name, options)}; valid: {', '.join(options)}")


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or '' when none is close."""
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
