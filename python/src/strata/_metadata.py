"""Metadata for the framework stores: the part of a document's metadata that strata's
metadata model holds (``docs/filters.md``), so that filters can test it."""

import math
from typing import Any

# Deepest nesting the metadata model holds (the top level is 1).
_MAX_DEPTH = 8


def filterable(value: Any, depth: int = 1) -> Any:
    """The part of a metadata value the filter model holds (None: nothing)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        items = [x for x in value if isinstance(x, (str, int, float)) and not isinstance(x, bool)]
        return items if len(items) == len(value) and all(
            not isinstance(x, float) or math.isfinite(x) for x in items) else None
    if isinstance(value, dict) and depth < _MAX_DEPTH:
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and k and "." not in k:
                f = filterable(v, depth + 1)
                if f is not None or v is None:
                    out[k] = f
        return out
    return None
