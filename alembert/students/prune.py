"""A student cut from the teacher's own weights: fewer layers, a narrower FFN, fewer heads with a
narrower residual stream (:mod:`alembert.models.prune`), the units kept being those the model
needs most on the run's own training batches (:mod:`alembert.models.importance`: Fisher scores of
per-unit gates under the model's own outputs, so no labels are read).

``--student-prune heads=6,ffn=1536,layers=0,2,4,6,8,10`` (``student.prune``) cuts the teacher, or
``student.path`` when given (prune a distilled student further, one round of iterative pruning).
Unlike a random-init student of the same shape, the result starts from the teacher's weights, and a
hidden-pruned one keeps the record of its residual dimensions, from which a recipe's projection to
the teacher's width starts as a selection instead of a random matrix (:func:`~alembert.models.prune.selection`).
"""

from __future__ import annotations

import torch

from alembert.errors import AlembertError
from alembert.models.importance import INPUTS, keep_top, model_outputs, score_units
from alembert.models.prune import Shape, check_request, heads_for, layout_of, prune
from alembert.students.base import Builder, BuiltStudent, Request


def _sentence_outputs(embedder):
    """An embedding run's importance: the sentence embedding its recipes compare."""

    def outputs(model, batch):
        kw = {k: batch[k] for k in INPUTS if k in batch}
        return {"embedding": embedder(**kw).embeddings}

    return outputs


class Prune(Builder):
    name = "prune"
    needs_data = True
    section = "prune"

    def check(self, request: Request) -> None:
        p = request.spec.prune
        if p is None:
            raise AlembertError(
                "student builder 'prune' needs what to cut: --student-prune heads=K,ffn=N[,layers=0,2,...]"
            )
        if p.heads is None and p.hidden is None and p.ffn is None and p.layers is None:
            raise AlembertError("--student-prune cuts nothing: give heads=K (or hidden=N), ffn=N and/or layers=0,2,...")
        if request.spec.path:
            return  # the other model is read by build; its shape is checked there, still before any compute
        layout_of(request.teacher)
        check_request(Shape.of(request.teacher), p.heads, p.ffn, p.layers, "--student-prune", p.hidden)

    def build(self, request: Request) -> BuiltStudent:
        p = request.spec.prune
        if request.spec.path:
            source, origin, name = request.load(request.spec.path), "model", request.spec.path
            layout_of(source)
            check_request(Shape.of(source), p.heads, p.ffn, p.layers, "--student-prune", p.hidden)
        else:
            source, origin, name = request.teacher, "teacher", request.teacher_name
        shape = Shape.of(source)
        outputs = _sentence_outputs(request.embedder) if request.embedder is not None and origin == "teacher" else None
        with torch.enable_grad():
            scores = score_units(
                source, request.data.batches, p.batches, seed=request.seed, outputs=outputs or model_outputs
            )
        if scores.batches == 0:
            raise AlembertError("--student-prune: the training data gave no batch to measure importance on")
        record = {
            "importance": "fisher" + (" (sentence embedding)" if outputs else ""),
            "batches": scores.batches,
            "examples": scores.examples,
            "seconds": round(scores.seconds, 2),
        }
        heads = heads_for(shape, p.heads, p.hidden, "--student-prune")
        keep = keep_top(scores, source, heads, p.ffn, p.layers, record)
        student = prune(source, keep)
        c = student.config
        parts = []
        if p.layers is not None:
            parts.append(f"layers {','.join(map(str, keep.layers))} of {shape.layers}")
        if heads is not None:
            parts.append(f"{c.num_attention_heads}/{shape.heads} heads, hidden {c.hidden_size}/{shape.hidden}")
        if p.ffn is not None:
            parts.append(f"FFN {p.ffn}/{shape.ffn}")
        description = (
            f"pruned from {name}: {', '.join(parts)}; units ranked by Fisher importance of gates"
            f"{' on the sentence embedding' if outputs else ''} over {scores.batches} training batches "
            f"({scores.examples} texts, {scores.seconds:.1f} s)"
        )
        return BuiltStudent(student, description, origin)
