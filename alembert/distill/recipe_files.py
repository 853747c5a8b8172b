"""The packaged recipes' folder and names, torch-free (the CLI's help lists them)."""

from __future__ import annotations

from pathlib import Path

RECIPE_DIR = Path(__file__).parent / "recipes"


def recipe_names() -> list[str]:
    """The packaged recipe names (``alembert/distill/recipes/*.yaml``), sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))
