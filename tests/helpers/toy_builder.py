"""A student builder that lives outside alembert and needs data: ``--set student.builder=toy``
reads two real training batches, remembers them (so a test can check what it was given and
when), and returns layer 0 of the teacher. It exists to show that a builder is one new file:
importing this module registers it, and ``distill`` and ``distill-general`` reach it unchanged."""

from __future__ import annotations

import itertools

from alembert.models.student import student_from_teacher
from alembert.students import Builder, BuiltStudent, Request

#: one entry per build: the batches read, the tokenizer that encoded them, the teacher's class.
SEEN: list[dict] = []


class ToyBuilder(Builder):
    name = "toy"
    needs_data = True

    def build(self, request: Request) -> BuiltStudent:
        batches = list(itertools.islice(request.data.batches, 2))
        teacher = type(request.teacher).__name__
        SEEN.append({"batches": batches, "tokenizer": request.data.tokenizer, "teacher": teacher})
        student = student_from_teacher(request.teacher, [0])
        return BuiltStudent(student, f"toy: layer 0 of {request.teacher_name} after {len(batches)} batches", "teacher")
