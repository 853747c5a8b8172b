"""Matplotlib set up for files only: the Agg backend, its cache inside alembert's cache
folder (not the home folder), and PNGs written atomically."""

from __future__ import annotations

import io
import os
from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    from alembert.models.packaged import cache_dir

    os.environ.setdefault("MPLCONFIGDIR", str(cache_dir() / "matplotlib"))
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` through a temporary file, then close it."""
    from alembert.files import write_bytes_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    finally:
        pyplot().close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path
