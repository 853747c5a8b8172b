"""Another model folder as it is: a student from ``distill-general``, or any smaller pretrained model."""

from __future__ import annotations

from alembert.students.base import Builder, BuiltStudent, Request


class Checkpoint(Builder):
    name = "checkpoint"

    @classmethod
    def selects(cls, spec) -> bool:
        return bool(spec.path) and spec.layers is None

    def build(self, request: Request) -> BuiltStudent:
        path = request.path(self.name)
        return BuiltStudent(request.load(path), f"checkpoint {path}", "model")
