"""Read GLUE splits and user data files into ``datasets.Dataset`` objects.

Every reader returns the same standard columns:

* ``text_a`` (str): the text, or the first text of a pair;
* ``text_b`` (str): the second text, only for sentence-pair data;
* ``label``: for classification a ``ClassLabel`` (int64 class ids; the names are in
  ``ds.features["label"].names``), for regression a float32 score. Unlabelled
  data (``allow_unlabelled=True``) has no ``label`` column.

Files are read with Python's ``csv`` module as UTF-8 (a byte-order mark is
dropped). ``.tsv`` files are read like GLUE's: tab-separated with quote
characters kept as text (``csv.QUOTE_NONE``), because GLUE texts contain stray
``"``. ``.csv`` files use normal CSV quoting. ``.jsonl`` (or ``.json`` with one
object per line) holds one JSON object per line.

Every problem with the input raises :class:`~alembert.errors.AlembertError`
with a one-line message naming the file, the line or column, and the fix.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from alembert.data.glue import TaskSpec, get_task
from alembert.errors import AlembertError
from alembert.paths import default_data_dir  # noqa: F401 (re-exported: its callers import it from here)

# Column names tried, in order, when no explicit column and no task column matches.
TEXT_COLUMNS = ("text", "sentence", "sentence1")
TEXT_PAIR_COLUMNS = ("text_pair", "sentence2")
LABEL_COLUMNS = ("label",)
_FLAGS = {"text_a": "--text-column", "text_b": "--text-pair-column", "label": "--label-column"}
_MISSING = object()  # a key absent from one JSON line
_INT = re.compile(r"-?\d+")


@dataclass
class _Table:
    """Rows read from a file, before columns are picked out."""

    path: Path
    columns: list[str]  # header names; "0", "1", ... for a headerless file
    rows: list[list]  # field values of each data row
    lines: list[int]  # line number of each row in the file, for error messages
    headerless: bool = False


# ---------------------------------------------------------------- reading files


def _check_file(path: Path, hint: str) -> None:
    if not path.exists():
        raise AlembertError(f"data file {path} not found; {hint}")
    if not path.is_file():
        raise AlembertError(f"data file {path} is not a regular file; {hint}")


def _decode_error(path: Path) -> AlembertError:
    """Build the error for a file that is not UTF-8, naming the line of the first bad byte."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        where = ""
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        where = f" line {line}"
    return AlembertError(f"data file {path}{where}: bytes are not valid UTF-8; re-save the file with UTF-8 encoding")


#: the longest field a CSV/TSV reader takes, in characters (Python's csv module stops at 131,072 by default,
#: which a legitimate long document passes); a field over it is one line naming the limit
FIELD_LIMIT = 1 << 28


def _tab_hint(path: Path, first_line: str) -> str:
    """The advice for a .csv file whose first line holds tabs: it is a TSV under the wrong name."""
    if path.suffix.lower() == ".csv" and "\t" in first_line:
        return "; the file looks tab-separated: rename it to .tsv"
    return ""


def _read_delimited(path: Path, delimiter: str, has_header: bool) -> _Table:
    """Read a .tsv (no quoting, like GLUE) or .csv (standard quoting) file.

    CSV is read with ``strict=True``: Python's reader otherwise lets a double quote that is
    never closed swallow every following row into one text, silently (strict mode fails at the
    end of the file, and at a closing quote that is not followed by a delimiter; the error names
    the line where the broken record starts). A header with the same
    column name twice is refused (which one would be used?)."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    kind = "tab-separated" if delimiter == "\t" else "comma-separated"
    header, rows, lines, width = None, [], [], None
    start = 1  # line on which the record being read begins
    limit = csv.field_size_limit(FIELD_LIMIT)
    hint = ""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            hint = _tab_hint(path, f.readline(1 << 16))
            f.seek(0)
            reader = csv.reader(f, delimiter=delimiter, quoting=quoting, strict=delimiter != "\t")
            for fields in reader:
                first, start = start, reader.line_num + 1
                if not fields:  # blank line
                    continue
                if width is None:
                    width = len(fields)
                    if has_header:
                        header = fields
                        _no_duplicate_columns(path, header)
                        continue
                if len(fields) != width:
                    raise AlembertError(
                        f"data file {path} line {reader.line_num}: expected {width} {kind} "
                        f"fields, found {len(fields)}; fix that row (a stray delimiter or line "
                        f"break inside a text?){hint}"
                    )
                rows.append(fields)
                lines.append(first)
    except UnicodeDecodeError:
        raise _decode_error(path) from None
    except csv.Error as e:
        if "field larger than field limit" in str(e):
            raise AlembertError(
                f"data file {path} line {start}: a field is longer than {FIELD_LIMIT:,} characters, the reader's "
                f"limit; split that text or shorten it{hint}"
            ) from None
        raise AlembertError(
            f"data file {path} line {start}: malformed {kind} row ({e}); check that row for an unbalanced double "
            f"quote{hint}"
        ) from None
    finally:
        csv.field_size_limit(limit)
    if header is None:
        header = [str(i) for i in range(width or 0)]
    return _Table(path, header, rows, lines, headerless=not has_header)


def _no_duplicate_columns(path: Path, header: list[str]) -> None:
    seen = set()
    for name in header:
        if name in seen:
            raise AlembertError(f"data file {path}: column {name!r} appears twice in the header; rename one of them")
        seen.add(name)


def _read_jsonl(path: Path) -> _Table:
    """Read a JSON Lines file: one JSON object per line."""
    objects, lines, columns = [], [], {}
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise AlembertError(
                        f"data file {path} line {number}: invalid JSON ({e.msg}); each line "
                        'must be one JSON object (JSON Lines), e.g. {"text": "...", "label": 1}'
                    ) from None
                if not isinstance(obj, dict):
                    raise AlembertError(
                        f"data file {path} line {number}: expected a JSON object, found "
                        f"{type(obj).__name__}; write one object per line (JSON Lines)"
                    )
                columns.update(dict.fromkeys(obj))
                objects.append(obj)
                lines.append(number)
    except UnicodeDecodeError:
        raise _decode_error(path) from None
    rows = [[obj.get(c, _MISSING) for c in columns] for obj in objects]
    return _Table(path, list(columns), rows, lines)


def _read_any(path: Path, task: TaskSpec | None, text_candidates: list[str]) -> _Table:
    """Read a user file by extension; a headerless GLUE file (CoLA) is detected."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path)
    if suffix not in (".tsv", ".csv"):
        raise AlembertError(
            f"data file {path}: unsupported extension {suffix!r}; use .csv, .tsv or .jsonl (one JSON object per line)"
        )
    table = _read_delimited(path, "\t" if suffix == ".tsv" else ",", has_header=True)
    if (
        task is not None
        and not task.has_header
        and table.columns
        and not any(c in table.columns for c in text_candidates)
    ):
        # The task's files have no header (CoLA) and this first row is no header: it is data.
        table.rows.insert(0, table.columns)
        table.lines.insert(0, table.lines[0] - 1 if table.lines else 1)
        table.columns = [str(i) for i in range(len(table.columns))]
        table.headerless = True
    return table


# ------------------------------------------------------------- building columns


def _find_column(table: _Table, role: str, candidates: list[str], required: bool, fix: str | None = None) -> int | None:
    """Index of the first candidate column present in the table."""
    for name in candidates:
        if name in table.columns:
            return table.columns.index(name)
    if not required:
        return None
    looked = " or ".join(repr(c) for c in dict.fromkeys(candidates))  # a candidate named twice is listed once
    fix = fix or f"pass {_FLAGS[role]} with one of these"
    if table.path.suffix.lower() == ".csv" and any("\t" in c for c in table.columns):
        fix += "; the file looks tab-separated: rename it to .tsv"
    raise AlembertError(
        f"data file {table.path}: column {looked} not found (columns: {', '.join(table.columns) or 'none'}); {fix}"
    )


def _values(table: _Table, index: int, name: str) -> list:
    """One column's values; a missing or null value is an error naming its line."""
    out = []
    for row, line in zip(table.rows, table.lines, strict=True):
        value = row[index]
        if value is None or value is _MISSING:
            raise AlembertError(
                f"data file {table.path} line {line}: no value in column {name!r}; fill it in or remove the row"
            )
        out.append(value)
    return out


def _is_number(key: str) -> bool:
    try:
        return math.isfinite(float(key))
    except ValueError:
        return False


def _key(value) -> str:
    """A label value as a string key: 1, 1.0 and "1" all become "1"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _encode_labels(table: _Table, values: list, column: str, task: TaskSpec | None, label_names: Sequence[str] | None):
    """Turn raw label values into (class ids or floats, class names or None)."""
    lines = table.lines
    if task is not None and task.is_regression:
        scores = []
        for value, line in zip(values, lines, strict=True):
            try:
                score = float(value)
            except (TypeError, ValueError):
                score = math.nan
            if not math.isfinite(score):
                raise AlembertError(
                    f"data file {table.path} line {line}: label {value!r} in column {column!r} "
                    f"is not a number; task {task.name} is regression and needs numeric scores"
                )
            scores.append(score)
        return scores, None

    keys = [_key(v) for v in values]
    for key, line in zip(keys, lines, strict=True):
        if key == "":
            raise AlembertError(
                f"data file {table.path} line {line}: empty label in column {column!r}; fill it in or remove the row"
            )
    if task is not None or label_names is not None:
        names = list(task.label_names if task is not None else label_names)
        raw = list(task.label_values) if task is not None else names
        # Accept class ids, human names and the raw GLUE values (later entries win).
        mapping = {str(i): i for i in range(len(names))}
        mapping.update({n: i for i, n in enumerate(names)})
        mapping.update({r: i for i, r in enumerate(raw)})
        ids = []
        for key, line in zip(keys, lines, strict=True):
            if key not in mapping:
                allowed = ", ".join(dict.fromkeys(raw + names))
                fix = (
                    f"check --task (is this {task.name} data?)"
                    if task is not None and task.name != "custom"
                    else "add it to --labels"
                    + (
                        ' (a name holding a comma: give --labels as a JSON list, e.g. \'["a, b", "c"]\')'
                        if "," in key
                        else ""
                    )
                )
                raise AlembertError(
                    f"data file {table.path} line {line}: unknown label {key!r} in column "
                    f"{column!r} (allowed: {allowed}); fix the row or {fix}"
                )
            ids.append(mapping[key])
        return ids, names

    unique = set(keys)
    if not all(_INT.fullmatch(k) for k in unique) and all(_is_number(k) for k in unique):
        # Non-integer numbers: a score to regress on, not classes.
        return [float(k) for k in keys], None
    if all(_INT.fullmatch(k) for k in unique) and min(int(k) for k in unique) >= 0:
        # Integer labels are class ids already; classes 0..max.
        ids = [int(k) for k in keys]
        return ids, [str(i) for i in range(max(ids) + 1)]
    names = sorted(unique)
    index = {n: i for i, n in enumerate(names)}
    return [index[k] for k in keys], names


def _to_dataset(
    table: _Table,
    task: TaskSpec | None,
    cols: dict[str, list[str]],
    required: dict[str, bool],
    label_names=None,
    fix: str | None = None,
) -> datasets.Dataset:
    """Pick the text and label columns out of a table and build the Dataset."""
    if not table.rows:
        raise AlembertError(
            f"data file {table.path}: no data rows (the file is empty or holds only a header); "
            "pass a file with at least one example"
        )
    data, features = {}, {}
    for role in ("text_a", "text_b"):
        index = _find_column(table, role, cols[role], required[role], fix)
        if index is not None:
            data[role] = [v if isinstance(v, str) else str(v) for v in _values(table, index, table.columns[index])]
            features[role] = datasets.Value("string")
    index = _find_column(table, "label", cols["label"], required["label"], fix)
    if index is not None:
        name = table.columns[index]
        data["label"], names = _encode_labels(table, _values(table, index, name), name, task, label_names)
        features["label"] = datasets.Value("float32") if names is None else datasets.ClassLabel(names=list(names))
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def _task_column(task: TaskSpec | None, role: str) -> list[str]:
    column = None if task is None else getattr(task, role)
    return [] if column is None else [str(column)]


# ------------------------------------------------------------------ public API


def load_glue_split(task: TaskSpec | str, data_dir: str | Path, split: str) -> datasets.Dataset:
    """Load the ``"train"`` or ``"dev"`` split of a GLUE task from the ``glue_data`` folder
    ``data_dir`` (which holds ``SST-2/``, ``MRPC/``, ...)."""
    task = get_task(task) if isinstance(task, str) else task
    if split not in ("train", "dev"):
        raise AlembertError(f"unknown split {split!r} for task {task.name}; use 'train' or 'dev'")
    if not task.glue_dir:  # your own data (custom_task): there is no GLUE file to fall back on
        raise AlembertError(
            f"your own data has no {split} file: pass --{split}-file FILE (the same columns as --train-file)"
        )
    data_dir = Path(data_dir)
    path = data_dir / task.glue_dir / (task.train_file if split == "train" else task.dev_file)
    _check_file(
        path,
        f"expected the GLUE {task.name} {split} file there; pass --data-dir with "
        "the glue_data folder (holding SST-2/, MRPC/, ...) or set ALEMBERT_DATA",
    )
    table = _read_delimited(path, "\t", task.has_header)
    cols = {role: _task_column(task, role) for role in ("text_a", "text_b", "label")}
    required = {"text_a": True, "text_b": task.is_pair, "label": True}
    fix = f"this does not look like the original GLUE {task.name} file; check --data-dir"
    return _to_dataset(table, task, cols, required, fix=fix)


def load_data_file(
    path: str | Path,
    task: TaskSpec | str | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
    allow_unlabelled: bool = False,
) -> datasets.Dataset:
    """Load a user data file (.csv, .tsv, .jsonl) into the standard columns.

    Columns: an explicit ``*_column`` argument wins, then the task's GLUE column name,
    then the defaults ``text``/``sentence``/``sentence1``, ``text_pair``/``sentence2``
    and ``label``. A second text column is required for pair tasks and when
    ``text_pair_column`` is given; otherwise it is used if present.

    Labels: with a task, raw GLUE values, label names or class ids are accepted
    (``label_names`` is then ignored); without one, ``label_names`` fixes the class order, else classes are inferred
    (non-negative integers are used as class ids; other values are sorted).
    The class names end up in ``ds.features["label"].names``.
    """
    task = get_task(task) if isinstance(task, str) else task
    path = Path(path)
    _check_file(path, "check the path given to --train-file / --dev-file")

    def candidates(explicit, role, defaults):
        return [str(explicit)] if explicit is not None else _task_column(task, role) + list(defaults)

    cols = {
        "text_a": candidates(text_column, "text_a", TEXT_COLUMNS),
        "text_b": candidates(text_pair_column, "text_b", TEXT_PAIR_COLUMNS),
        "label": candidates(label_column, "label", LABEL_COLUMNS),
    }
    table = _read_any(path, task, [c for c in cols["text_a"] if not c.isdigit()])
    if not table.headerless:  # integer task columns (CoLA) only apply to headerless files
        explicit = {str(c) for c in (text_column, text_pair_column, label_column)}
        cols = {role: [c for c in names if not c.isdigit() or c in explicit] for role, names in cols.items()}
    required = {
        "text_a": True,
        "text_b": text_pair_column is not None or (task is not None and task.is_pair),
        "label": label_column is not None or not allow_unlabelled,
    }
    return _to_dataset(table, task, cols, required, label_names=label_names)


def glue_texts(task_name: str, data_dir: str | Path | None = None) -> list[str]:
    """Every text of a GLUE task's training set (both sides of a pair), without labels: raw text to learn from."""
    from alembert.data.glue import get_task

    ds = load_glue_split(get_task(task_name), data_dir or default_data_dir(), "train")
    return [t for col in ("text_a", "text_b") if col in ds.column_names for t in ds[col] if t]
