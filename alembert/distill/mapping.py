"""Layer mappings as data: which student layer learns from which teacher layer.

Layer index convention (used everywhere in alembert):

* ``0`` is the embedding output, ``i`` in ``1..L`` is the output of transformer
  layer ``i``; both are HF ``hidden_states[i]``.
* Attention maps exist only for ``i >= 1`` and are HF ``attentions[i - 1]``.

A mapping is a list of ``(student_layer, teacher_layer)`` pairs. It is written
in a recipe either as a strategy name or explicitly:

* ``"skip"`` (PKD-Skip): with ``k = n_teacher // n_student``, student layers
  ``1..n_student-1`` learn from teacher layers ``k, 2k, ...``
  (12→6: teacher 2, 4, 6, 8, 10).
* ``"last"`` (PKD-Last): student layers ``1..n_student-1`` learn from the
  teacher layers just below its top one (12→6: teacher 7, 8, 9, 10, 11).
  PKD leaves the top layer to the KD loss on the logits.
* ``"uniform"`` (TinyBERT): student ``m`` learns from teacher
  ``floor(m * n_teacher / n_student)`` for ``m = 0..n_student``, embeddings
  (0←0) and top layers (M←N) included. When the counts do not divide, the
  index is rounded down (12→5: teacher 0, 2, 4, 7, 9, 12).
* ``"last-layer"`` (DistilBERT's cosine loss): ``[(n_student, n_teacher)]``.
* ``"none"``: no pairs.
* explicit: a string ``"1:2,2:4"`` (student:teacher) or a list of
  ``[student, teacher]`` pairs.

Error messages number pairs from 0, in the order they were written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import Any

from alembert.errors import AlembertError

Pair = tuple[int, int]

STRATEGIES = ("skip", "last", "uniform", "last-layer", "none")


def resolve_mapping(spec: Any, n_student: int, n_teacher: int) -> list[Pair]:
    """Turn a strategy name or an explicit mapping into validated pairs.

    ``n_student`` and ``n_teacher`` are the numbers of transformer layers.
    Raises :class:`AlembertError` for an unknown strategy, a strategy that
    cannot apply to these layer counts, or an invalid explicit mapping.
    """
    for what, n in (("student", n_student), ("teacher", n_teacher)):
        if not _is_int(n) or n < 1:
            raise AlembertError(f"{what} layer count must be a positive integer, got {n!r}")

    if isinstance(spec, str) and ":" not in spec:
        return _strategy(spec.strip().lower(), n_student, n_teacher)
    if isinstance(spec, str):
        pairs: list[Any] = [_parse_pair(i, item) for i, item in enumerate(spec.split(","))]
    elif isinstance(spec, Sequence):
        pairs = list(spec)
    else:
        raise AlembertError(
            f"layer mapping must be a strategy ({', '.join(STRATEGIES)}), a string like "
            f"'1:2,2:4' (student:teacher) or a list of [student, teacher] pairs; "
            f"got {type(spec).__name__}"
        )
    return validate_mapping(pairs, n_student, n_teacher)


def validate_mapping(
    pairs: Iterable[Any],
    n_student: int,
    n_teacher: int,
    allow_embeddings: bool = True,
) -> list[Pair]:
    """Check explicit pairs and return them as a list of ``(int, int)`` tuples.

    Each pair must be two integers, student in ``0..n_student`` and teacher in
    ``0..n_teacher`` (``1..`` when ``allow_embeddings`` is False, e.g. for
    attention maps), and no student layer may appear twice (a teacher layer
    may). Raises :class:`AlembertError` naming the pair, its index and the
    valid range.
    """
    low = 0 if allow_embeddings else 1
    seen: dict[int, int] = {}
    result: list[Pair] = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise AlembertError(f"layer mapping pair {i} ({pair!r}): expected a [student, teacher] pair")
        s, t = pair
        where = f"layer mapping pair {i} (student {s}, teacher {t})"
        if not (_is_int(s) and _is_int(t)):
            raise AlembertError(f"{where}: layer indices must be integers")
        for what, idx, n in (("student", s, n_student), ("teacher", t, n_teacher)):
            if idx < 0:
                raise AlembertError(f"{where}: {what} layer {idx} is negative; valid range {low}..{n}")
            if not low <= idx <= n:
                note = " (0, the embeddings, is not allowed here)" if idx == 0 else ""
                raise AlembertError(f"{where}: {what} layer {idx} out of range {low}..{n}{note}")
        if s in seen:
            raise AlembertError(
                f"{where}: student layer {s} is already mapped by pair {seen[s]}; "
                f"each student layer may learn from one teacher layer"
            )
        seen[s] = i
        result.append((int(s), int(t)))
    return result


def _strategy(name: str, n_student: int, n_teacher: int) -> list[Pair]:
    if name == "none":
        return []
    if name == "last-layer":
        return [(n_student, n_teacher)]
    if name not in STRATEGIES:
        raise AlembertError(
            f"unknown layer mapping strategy {name!r}; valid strategies: "
            f"{', '.join(STRATEGIES)}, or explicit pairs like '1:2,2:4' (student:teacher)"
        )
    if n_student > n_teacher:
        raise AlembertError(
            f"layer mapping strategy {name!r} needs a student no deeper than the teacher, "
            f"got {n_student} student layers and {n_teacher} teacher layers"
        )
    if name == "skip":
        k = n_teacher // n_student
        return [(m, m * k) for m in range(1, n_student)]
    if name == "last":
        return [(m, n_teacher - n_student + m) for m in range(1, n_student)]
    return [(m, m * n_teacher // n_student) for m in range(n_student + 1)]  # uniform


def _parse_pair(i: int, item: str) -> Any:
    """Parse one ``"s:t"`` item of a mapping string (indices still checked later)."""
    parts = item.split(":")
    if len(parts) != 2:
        raise AlembertError(f"layer mapping pair {i} ({item.strip()!r}): expected 'student:teacher' like '1:2'")
    out = []
    for part in parts:
        part = part.strip()
        try:
            out.append(int(part))
        except ValueError:
            out.append(part)  # validate_mapping reports the non-integer
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)
