"""A new shape with random weights: the teacher's family and vocabulary, fewer and/or narrower
layers (TinyBERT-4: 4 layers, hidden 312), seeded by the run's seed so two runs start alike."""

from __future__ import annotations

from alembert.models.student import student_from_config
from alembert.students.base import Builder, BuiltStudent, Request


class RandomInit(Builder):
    name = "config"

    @classmethod
    def selects(cls, spec) -> bool:
        return not spec.path and spec.from_config

    def build(self, request: Request) -> BuiltStudent:
        spec, teacher = request.spec, request.teacher
        student = student_from_config(
            teacher,
            spec.num_layers or teacher.config.num_hidden_layers,
            spec.hidden_size,
            spec.intermediate_size,
            spec.num_heads,
            seed=request.seed,
        )
        c = student.config
        return BuiltStudent(
            student,
            f"random init: {c.num_hidden_layers} layers, hidden {c.hidden_size}, "
            f"FFN {c.intermediate_size}, {c.num_attention_heads} heads",
            "random",
        )
