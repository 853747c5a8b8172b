"""Read SQuAD v1.1 JSON into ``datasets.Dataset`` objects, and split it by article.

Every reader returns one row per question with the columns of the Hub's ``squad``
dataset: ``id``, ``title``, ``context``, ``question`` and ``answers``
(``{"text": [...], "answer_start": [...]}``, character offsets into ``context``).

Offline, only SQuAD v1.1 dev is available (``shared/data/squad/dev-v1.1.json``:
48 articles, 2,067 paragraphs, 10,570 questions). :func:`split_by_article` cuts it
into a train part and a test part by article, so no Wikipedia page is in both;
with the defaults (``n_train=38``, ``seed=SPLIT_SEED``) the test part is the 10
articles of :data:`TEST_ARTICLES` (1,693 questions; the 38 train articles hold
8,877). This split is the default when no training file is given.

Every problem with the input raises :class:`~alembert.errors.AlembertError` with a
one-line message naming the file, the place in it and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import datasets

from alembert.errors import AlembertError
from alembert.paths import default_squad_file

#: Seed of the default article split (see :func:`split_by_article`).
SPLIT_SEED = 0

#: The 10 test articles of the default split of SQuAD v1.1 dev (``n_train=38``, ``seed=0``).
TEST_ARTICLES = (
    "Apollo_program",
    "Black_Death",
    "Harvard_University",
    "Normans",
    "Oxygen",
    "Packet_switching",
    "Southern_California",
    "Steam_engine",
    "Victoria_(Australia)",
    "Warsaw",
)

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "title": datasets.Value("string"),
        "context": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answers": {
            "text": datasets.List(datasets.Value("string")),
            "answer_start": datasets.List(datasets.Value("int32")),
        },
    }
)

_LAYOUT = (
    'expected SQuAD v1.1 JSON: {"data": [{"title", "paragraphs": [{"context", '
    '"qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}'
)


def _fail(path: Path, where: str, problem: str) -> AlembertError:
    return AlembertError(f"SQuAD file {path} {where}: {problem}; {_LAYOUT}")


def _field(obj, key: str, kind: type, path: Path, where: str):
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        problem = (
            f"{key!r} missing" if value is None else f"{key!r} is {type(value).__name__}, expected {kind.__name__}"
        )
        raise _fail(path, where, problem)
    return value


def load_squad(path: str | Path) -> list[dict]:
    """Read and check a SQuAD v1.1 JSON file; return its list of articles
    (``{"title", "paragraphs": [{"context", "qas": [...]}]}``), in file order."""
    path = Path(path)
    if not path.is_file():
        if os.environ.get("ALEMBERT_SQUAD") and path == default_squad_file():  # the default came from the variable
            raise AlembertError(
                f"SQuAD file {path} not found: ALEMBERT_SQUAD points there; set ALEMBERT_SQUAD to a SQuAD v1.1 "
                "JSON file (e.g. shared/data/squad/dev-v1.1.json) or unset it"
            )
        if path == default_squad_file():  # the default: looked up relative to the working directory
            raise AlembertError(
                f"SQuAD file {path} not found (the default, under ./shared/data or ../shared/data of the working "
                "directory); set ALEMBERT_SQUAD to a SQuAD v1.1 JSON file"
            )
        raise AlembertError(
            f"SQuAD file {path} not found; pass --train-file/--dev-file with a "
            "SQuAD v1.1 JSON file (e.g. shared/data/squad/dev-v1.1.json)"
        )
    try:
        root = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise AlembertError(f"SQuAD file {path}: not UTF-8 text; re-save it as UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise AlembertError(
            f"SQuAD file {path} line {e.lineno}: invalid JSON ({e.msg}); pass an unmodified SQuAD v1.1 JSON file"
        ) from None
    articles = _field(root, "data", list, path, "top level")
    seen: set[str] = set()
    for a, article in enumerate(articles):
        _field(article, "title", str, path, f"article {a}")
        where = f"article {article['title']!r}"
        for p, para in enumerate(_field(article, "paragraphs", list, path, where)):
            context = _field(para, "context", str, path, f"{where} paragraph {p}")
            for q, qa in enumerate(_field(para, "qas", list, path, f"{where} paragraph {p}")):
                qid = _field(qa, "id", str, path, f"{where} paragraph {p} question {q}")
                here = f"question {qid!r}"
                if qid in seen:
                    raise AlembertError(f"SQuAD file {path} {here}: duplicate id; give every question a unique id")
                seen.add(qid)
                _field(qa, "question", str, path, here)
                for answer in _field(qa, "answers", list, path, here):
                    text = _field(answer, "text", str, path, here)
                    start = _field(answer, "answer_start", int, path, here)
                    if not 0 <= start <= len(context) - len(text):
                        raise AlembertError(
                            f"SQuAD file {path} {here}: answer_start {start} of {text!r} lies "
                            f"outside its context ({len(context)} characters); fix the offset"
                        )
    return articles


def _rows(articles: Iterable[dict]) -> dict[str, list]:
    cols = {name: [] for name in FEATURES}
    for article in articles:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                cols["id"].append(qa["id"])
                cols["title"].append(article["title"])
                cols["context"].append(para["context"])
                cols["question"].append(qa["question"])
                cols["answers"].append(
                    {
                        "text": [a["text"] for a in qa["answers"]],
                        "answer_start": [a["answer_start"] for a in qa["answers"]],
                    }
                )
    return cols


def squad_examples(path: str | Path, articles: Iterable[str] | None = None) -> datasets.Dataset:
    """One row per question of the SQuAD file ``path``, in file order.

    ``articles``: titles of the articles to keep (``None``: all); an unknown title is an error.
    """
    data = load_squad(path)
    if articles is not None:
        keep = set(articles)
        unknown = keep - {a["title"] for a in data}
        if unknown:
            raise AlembertError(
                f"SQuAD file {path}: no article titled {sorted(unknown)[0]!r}; pick titles present in the file"
            )
        data = [a for a in data if a["title"] in keep]
    return datasets.Dataset.from_dict(_rows(data), features=FEATURES)


def split_by_article(
    path: str | Path | None = None, n_train: int = 38, seed: int = SPLIT_SEED
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Split a SQuAD file by article into ``(train, test)`` datasets.

    The titles are ordered by ``sha256(f"{seed}:{title}")`` (the same on every machine and
    Python version); the first ``n_train`` go to train, the rest to test. Each part keeps the
    file's order. ``path`` defaults to :func:`default_squad_file`. With the defaults on
    SQuAD v1.1 dev the test articles are :data:`TEST_ARTICLES`.
    """
    path = default_squad_file() if path is None else Path(path)
    data = load_squad(path)
    titles = [a["title"] for a in data]
    if not 0 < n_train < len(titles):
        raise AlembertError(
            f"cannot put {n_train} of the {len(titles)} articles of {path} in "
            f"the train part; pass a number between 1 and {len(titles) - 1}"
        )
    order = sorted(titles, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())
    train = set(order[:n_train])
    rows = _rows(data)
    ds = datasets.Dataset.from_dict(rows, features=FEATURES)
    is_train = [t in train for t in rows["title"]]
    return (
        ds.select([i for i, x in enumerate(is_train) if x]),
        ds.select([i for i, x in enumerate(is_train) if not x]),
    )


def squad_paragraphs(part: str = "train", path: str | Path | None = None) -> list[str]:
    """The distinct paragraphs of the ``train`` or ``test`` articles of the default article split
    (:func:`split_by_article`), in file order: raw text that never touches the other part."""
    train, test = split_by_article(path)
    return list(dict.fromkeys((train if part == "train" else test)["context"]))


def load_hub_squad(split: str = "validation", name: str = "rajpurkar/squad") -> datasets.Dataset:
    """Load ``split`` of SQuAD from the Hugging Face Hub (needs network), same columns."""
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # offline, unknown name, bad split: all reported the same way
        raise AlembertError(
            f"could not load hub dataset {name!r} (split {split!r}, "
            f"{type(e).__name__}): the hub is unreachable or the name wrong; "
            "pass --train-file with a SQuAD v1.1 JSON file"
        ) from None
    return ds.select_columns(list(FEATURES)).cast(FEATURES)
