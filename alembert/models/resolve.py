"""Turn a model name into a local directory: an alias, a path, or (offline-aware) a hub id."""

from __future__ import annotations

import re
from pathlib import Path

from alembert.errors import AlembertError
from alembert.models.packaged import ALIASES

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_model(name: str | Path) -> Path:
    """Return a local directory holding ``config.json`` for ``name``.

    ``name`` is an alias of a packaged model (``minilm-l6``, ``mpnet-base``), a local
    directory, or a hub id (downloaded into the hub cache when a hub is reachable).
    """
    name = str(name)
    if name in ALIASES:
        return ALIASES[name]()
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise AlembertError(f"model {name}: is a file, not a directory; pass the folder that holds config.json")
        if not (path / "config.json").is_file():
            raise AlembertError(
                f"model directory {name} has no config.json; "
                f"pass a folder saved with save_pretrained (or an alias: {', '.join(ALIASES)})"
            )
        return path
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local or not _HUB_ID.match(name):
        raise AlembertError(
            f"model directory {name} not found; pass an existing folder or an alias ({', '.join(ALIASES)})"
        )
    return _from_hub(name)


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as exc:  # offline, unknown repo, auth: all the same answer for the user
        raise AlembertError(
            f"model '{repo_id}' is not a local folder or alias and the model hub is unreachable "
            f"({type(exc).__name__}); pass a local path or an alias ({', '.join(ALIASES)})"
        ) from None
