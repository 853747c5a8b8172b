"""``--push-to-hub REPO``: checked before any compute, pushed after the run.

A push that can only fail should fail before hours of training, not after: the check
validates the repository id, refuses when the Hub is switched off (``HF_HUB_OFFLINE``) or
cannot be reached (one HTTP request with a short timeout, to the endpoint
``huggingface_hub`` itself uses, so ``HF_ENDPOINT`` is honoured), and when no token is
stored. The push itself (after ``metrics.json`` and the card are in place) is
``huggingface_hub``'s ``create_repo`` + ``upload_folder`` of the finished output folder,
checkpoints and trackers left out.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembert.errors import AlembertError, brief

TIMEOUT_S = 3.0
IGNORE = ["checkpoints/*", "trackers/*", ".alembert-*", "*.lock"]


def check_push_target(repo: str, timeout: float = TIMEOUT_S) -> None:
    """One-line AlembertError unless ``repo`` is a valid id and the Hub is reachable with a token."""
    from huggingface_hub import constants, get_session, get_token
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError:
        raise AlembertError(
            f"--push-to-hub {repo!r}: not a repository id; use NAME or OWNER/NAME (letters, digits, '-', '_', '.')"
        ) from None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or constants.HF_HUB_OFFLINE:
        raise AlembertError(
            f"--push-to-hub {repo}: the Hub is switched off here (HF_HUB_OFFLINE is set); "
            "unset it or drop --push-to-hub"
        )
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    try:
        get_session().head(endpoint.rstrip("/") + "/api/whoami-v2", timeout=timeout)
    except Exception as exc:  # DNS, refused connection, timeout, proxy: all mean "cannot push"
        reason = brief(exc, 120)
        raise AlembertError(
            f"--push-to-hub {repo}: the Hub at {endpoint} cannot be reached ({reason}); "
            "push later with `huggingface-cli upload`, or drop --push-to-hub"
        ) from None
    if not get_token():
        raise AlembertError(f"--push-to-hub {repo}: no Hub token; run `huggingface-cli login` or set HF_TOKEN")


def push_folder(folder: str | Path, repo: str, message: str) -> str:
    """Upload the finished output folder to ``repo`` (created if missing); returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo, exist_ok=True)
    api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message=message, ignore_patterns=IGNORE)
    return str(url)
