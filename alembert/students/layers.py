"""Kept layers: a copy of the teacher (or of ``student.path``) with only the chosen transformer
layers, every other one by default, as DistilBERT and PKD initialise their students. Embeddings,
pooler and head are copied, so the slice starts where its source is."""

from __future__ import annotations

from alembert.models.student import every_other_layer, student_from_teacher
from alembert.students.base import Builder, BuiltStudent, Offer, Request


def _names(layers: list[int]) -> str:
    return ",".join(map(str, layers))


def spread(n_teacher: int, n: int) -> list[int]:
    """``n`` teacher layers spread evenly from the first: every other one for half the depth
    (DistilBERT's 0,2,4,...), every third for a third (0,3,6,9 of 12), ..."""
    return [round(i * n_teacher / n) for i in range(n)]


class Layers(Builder):
    name = "layers"

    @classmethod
    def selects(cls, spec) -> bool:
        # a path with layers is a slice of that model; nothing at all is the default slice of the teacher
        return spec.layers is not None if spec.path else not spec.from_config

    def build(self, request: Request) -> BuiltStudent:
        spec = request.spec
        if spec.path:
            source = request.load(spec.path)
            layers = spec.layers if spec.layers is not None else every_other_layer(source.config.num_hidden_layers)
            return BuiltStudent(
                student_from_teacher(source, layers), f"layers {_names(layers)} (0-based) of {spec.path}", "model"
            )
        teacher = request.teacher
        layers = spec.layers if spec.layers is not None else every_other_layer(teacher.config.num_hidden_layers)
        return BuiltStudent(
            student_from_teacher(teacher, layers),
            f"teacher layers {_names(layers)} (0-based) of {request.teacher_name}",
            "teacher",
        )

    @classmethod
    def offers(cls, config, sentence: bool) -> list[Offer]:
        """Half, a third and a quarter of the teacher's depth (distinct, at least one layer)."""
        n_teacher = config.num_hidden_layers
        depths = sorted(
            {d for d in (n_teacher // 2, n_teacher // 3, n_teacher // 4) if 1 <= d < n_teacher}, reverse=True
        )
        return [Offer(f"layers-{d}", {"layers": spread(n_teacher, d)}, {"num_hidden_layers": d}) for d in depths]
