"""What a checkpoint remembers of its run, so ``--resume`` continues that run and no other.

A checkpoint holds the weights, the optimiser, the RNG and the position in the data; without
the run's settings, ``--resume`` with another learning rate, seed or data size continued anyway,
and ``metrics.json`` then described a run that never happened (225 steps "from 500 examples").
So every checkpoint also stores the resolved config and a fingerprint of the training set
(``run.json``), and a resume compares them with its own: a difference is a one-line error listing
the fields, unless ``--resume-force`` accepts it (``metrics.json`` then records what changed).

Fields that change nothing of the training itself (threads, trackers, evaluation batch size,
logging, where and whether to push) may differ, and so may where things are: a run folder or a
data file moved elsewhere is the same run (the training set's content is compared by its hash).
"""

from __future__ import annotations

import hashlib
import json

from alembert.errors import AlembertError

#: dotted config fields a resumed run may change: how it runs, not what it trains
FREE = (
    "resume",
    "resume_force",
    "dry_run",
    "overwrite",
    "push_to_hub",
    "train.threads",
    "train.report_to",
    "train.eval_batch_size",
    "train.log_every",
    "train.keep_checkpoints",
    "output_dir",
    "data.train_file",
    "data.dev_file",
    "data.data_dir",
)


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out |= _flat(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: tree}


def config_signature(cfg) -> dict:
    """The run's typed config as dotted fields (JSON values), without the :data:`FREE` ones."""
    flat = _flat(cfg.model_dump(mode="json"))
    return {k: v for k, v in flat.items() if k not in FREE}


def data_signature(loader) -> dict:
    """The training set's size and a hash of 16 rows spread over it (their token ids, or their
    repr): a file edited between the run and its resume gives another hash."""
    ds = getattr(loader, "dataset", None)
    try:
        n = len(ds)
    except TypeError:
        return {}
    h = hashlib.sha256(str(n).encode())
    for i in sorted({round(j * (n - 1) / 15) for j in range(16)} if n else set()):
        row = ds[i]
        h.update(repr(row.get("input_ids", row) if isinstance(row, dict) else row).encode())
    return {"train_rows": n, "train_hash": h.hexdigest()[:16]}


def differences(saved: dict, now: dict) -> list[str]:
    """``field: saved -> now`` for every field whose value differs (missing on one side included)."""
    keys = sorted(set(saved) | set(now))
    missing = "(unset)"
    return [
        f"{k}: {json.dumps(saved.get(k, missing))} -> {json.dumps(now.get(k, missing))}"
        for k in keys
        if saved.get(k, missing) != now.get(k, missing)
    ]


def check(saved: dict | None, now: dict, force: bool, what: str) -> list[str]:
    """The differences between a checkpoint's ``saved`` signature and this run's ``now``: none, or
    (with ``force``) the list to record; without ``force`` a difference is a one-line error.
    ``saved`` None (a checkpoint written before signatures existed) is accepted as it is."""
    if saved is None:
        return []
    diff = differences(saved, now)
    if diff and not force:
        shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise AlembertError(
            f"--resume: this command's {what} differs from the checkpoint's run ({shown}); run the same command "
            "again to continue that run, or pass --resume-force to continue with the new values (recorded in "
            "metrics.json)"
        )
    return diff
