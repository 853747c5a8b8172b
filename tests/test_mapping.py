"""Layer mappings: the strategies' worked examples and every validation error."""

import re

import pytest

from alembert.distill.mapping import resolve_mapping, validate_mapping
from alembert.errors import AlembertError


@pytest.mark.parametrize(
    "spec, ns, nt, expected",
    [
        ("skip", 6, 12, [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]),
        ("skip", 3, 6, [(1, 2), (2, 4)]),
        ("last", 6, 12, [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11)]),
        ("last", 3, 6, [(1, 4), (2, 5)]),
        ("uniform", 4, 12, [(0, 0), (1, 3), (2, 6), (3, 9), (4, 12)]),
        ("uniform", 5, 12, [(0, 0), (1, 2), (2, 4), (3, 7), (4, 9), (5, 12)]),  # round down
        ("last-layer", 6, 12, [(6, 12)]),
        ("none", 6, 12, []),
        (" Skip ", 6, 12, [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]),
    ],
)
def test_strategies(spec, ns, nt, expected):
    assert resolve_mapping(spec, ns, nt) == expected


def test_explicit_string_and_list():
    assert resolve_mapping("1:2, 2:4", 3, 12) == [(1, 2), (2, 4)]
    assert resolve_mapping([[0, 0], (3, 12)], 3, 12) == [(0, 0), (3, 12)]
    assert resolve_mapping([], 3, 12) == []


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            [[1, 3], [2, 6], [3, 9], [4, 13]],
            "layer mapping pair 3 (student 4, teacher 13): teacher layer 13 out of range 0..12",
        ),
        (
            "1:2,7:4",
            "layer mapping pair 1 (student 7, teacher 4): student layer 7 out of range 0..6",
        ),
        (
            "1:2,-1:4",
            "pair 1 (student -1, teacher 4): student layer -1 is negative; valid range 0..6",
        ),
        (
            "1:2,2:-3",
            "pair 1 (student 2, teacher -3): teacher layer -3 is negative; valid range 0..12",
        ),
        ("1:2,1:4", "pair 1 (student 1, teacher 4): student layer 1 is already mapped by pair 0"),
        ("1:a", "pair 0 (student 1, teacher a): layer indices must be integers"),
        ([[1, 2.0]], "pair 0 (student 1, teacher 2.0): layer indices must be integers"),
        ([[True, 2]], "layer indices must be integers"),
        ("1:2,3-4", "pair 1 ('3-4'): expected 'student:teacher'"),
        ([[1, 2, 3]], "pair 0 ([1, 2, 3]): expected a [student, teacher] pair"),
        ("skipp", "unknown layer mapping strategy 'skipp'; valid strategies: skip, last, uniform"),
        (42, "layer mapping must be a strategy"),
    ],
)
def test_validation_errors(spec, message):
    with pytest.raises(AlembertError, match=re.escape(message)):
        resolve_mapping(spec, 6, 12)


def test_embeddings_can_be_disallowed():
    assert validate_mapping([(1, 2)], 6, 12, allow_embeddings=False) == [(1, 2)]
    with pytest.raises(AlembertError, match=r"student layer 0 out of range 1\.\.6 \(0, the embeddings"):
        validate_mapping([(1, 2), (0, 0)], 6, 12, allow_embeddings=False)


@pytest.mark.parametrize("strategy", ["skip", "last", "uniform"])
def test_strategy_cannot_apply_to_deeper_student(strategy):
    with pytest.raises(AlembertError, match=f"'{strategy}' needs a student no deeper.*8 student.*6 teacher"):
        resolve_mapping(strategy, 8, 6)


def test_bad_layer_counts():
    with pytest.raises(AlembertError, match="student layer count"):
        resolve_mapping("skip", 0, 12)
