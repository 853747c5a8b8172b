"""What the losses see of the teacher for one batch, wherever it comes from.

Three sources give the same view:
- online, shared tokenizer: one teacher forward on the student's inputs;
- cached (:mod:`alembert.distill.teacher_cache`): logits and [CLS] states read by example index;
- online, two tokenizers (:mod:`alembert.distill.alignment`): the teacher runs on its own
  ``teacher_*`` inputs and its token-level tensors are gathered onto the student's positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from alembert.data.two_tokenizers import TEACHER_PREFIX
from alembert.distill.alignment import batch_alignment, gather_teacher, gather_teacher_attention
from alembert.models.capture import capture_keys
from alembert.models.heads import output_logits

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
LABEL_KEYS = ("labels", "start_positions", "end_positions")


@dataclass
class TeacherView:
    logits: list[torch.Tensor]
    cls: Callable[[int], torch.Tensor] | None  # layer -> (B, H)
    hidden: Callable[[int], torch.Tensor] | None = None  # layer -> (B, S_student, H)
    attention: Callable[[int], torch.Tensor] | None = None  # layer (1-based) -> (B, heads, S, S)
    mask: torch.Tensor | None = None  # student positions usable by token-level losses
    embeddings: torch.Tensor | None = None  # (B, dim) sentence embeddings of an embedding teacher
    qkv: Callable[[int, str], torch.Tensor] | None = None  # (layer 1-based, "q"/"k"/"v") -> (B, S_student, W)


def online_view(teacher, batch: dict, hidden: bool, attention: bool, qkv=()) -> TeacherView:
    """``qkv``: the ``(layer, kind)`` projections to record (relation terms)."""
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    with capture_keys(teacher, qkv) as captured:
        out = teacher(**inputs, output_hidden_states=hidden, output_attentions=attention)
    return TeacherView(
        logits=output_logits(out),
        cls=lambda layer: out.hidden_states[layer][:, 0],
        hidden=(lambda layer: out.hidden_states[layer]) if hidden else None,
        attention=(lambda layer: out.attentions[layer - 1]) if attention else None,
        mask=batch["attention_mask"],
        embeddings=getattr(out, "embeddings", None),
        qkv=(lambda layer, kind: captured[(layer, kind)]) if qkv else None,
    )


def cached_view(cache, batch: dict) -> TeacherView:
    logits, cls = cache.lookup(batch["idx"])
    device = batch["input_ids"].device
    return TeacherView(logits=[logits.to(device)], cls=lambda layer: cls[layer].to(device))


def aligned_view(
    teacher, batch: dict, teacher_tok, student_tok, hidden: bool, attention: bool, mode: str, qkv=()
) -> TeacherView:
    """Recorded queries, keys and values (``qkv``) are gathered onto the student's positions like hidden states."""
    inputs = {k[len(TEACHER_PREFIX) :]: v for k, v in batch.items() if k.startswith(TEACHER_PREFIX)}
    with capture_keys(teacher, qkv) as captured:
        out = teacher(**inputs, output_hidden_states=hidden, output_attentions=attention)
    token_level = hidden or attention or bool(qkv)
    aligned = batch_alignment(batch, teacher_tok, student_tok, mode) if token_level else None
    return TeacherView(
        logits=output_logits(out),
        cls=lambda layer: out.hidden_states[layer][:, 0],
        hidden=(lambda layer: gather_teacher(out.hidden_states[layer], aligned.teacher_index)) if hidden else None,
        attention=(lambda layer: gather_teacher_attention(out.attentions[layer - 1], aligned.teacher_index))
        if attention
        else None,
        mask=aligned.mask if aligned is not None else None,
        embeddings=getattr(out, "embeddings", None),
        qkv=(lambda layer, kind: gather_teacher(captured[(layer, kind)], aligned.teacher_index)) if qkv else None,
    )
