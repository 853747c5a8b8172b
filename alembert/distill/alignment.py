"""Teacher and student with different tokenizers: which teacher position matches which student position.

The two tokenisations themselves come from :mod:`alembert.data.two_tokenizers`; logit losses
need nothing more. Token-level losses (hidden, attention, cosine) need to
know which teacher position matches each student position: :func:`batch_alignment`
checks that the two tokenisations agree piece for piece apart from special tokens
(``<s> a </s></s> b </s>`` vs ``[CLS] a [SEP] b [SEP]``: MPNet vs uncased BERT) and
returns gather indices; :func:`gather_teacher` and :func:`gather_teacher_attention`
then bring the teacher's tensors onto the student's positions, and the returned mask
(1 = real and aligned student position) replaces the attention mask in the loss.
Mode ``cls`` aligns only the first position ([CLS]/<s>) of each example, unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from alembert.data.two_tokenizers import TEACHER_PREFIX
from alembert.errors import AlembertError

MODES = ("strict", "cls")


def _special_names(tokenizer) -> dict[int, str]:
    """Special token id -> role shared across families (``<s>`` and ``[CLS]`` are both CLS)."""
    roles = {}
    for attr, role in (
        ("bos_token", "CLS"),
        ("eos_token", "SEP"),
        ("cls_token", "CLS"),
        ("sep_token", "SEP"),
        ("unk_token", "UNK"),
        ("mask_token", "MASK"),
        ("pad_token", "PAD"),
    ):
        token = getattr(tokenizer, attr, None)
        if token is not None:
            roles[tokenizer.convert_tokens_to_ids(str(token))] = role
    return roles


def _units(ids: list[int], tokenizer, roles: dict[int, str]) -> list[tuple[str, list[int]]]:
    """The sequence as (symbol, positions) units; a run of separators is one unit."""
    pieces = tokenizer.convert_ids_to_tokens(ids)
    units: list[tuple[str, list[int]]] = []
    for pos, (i, piece) in enumerate(zip(ids, pieces, strict=True)):
        symbol = "\x00" + roles[i] if i in roles else piece
        if symbol == "\x00SEP" and units and units[-1][0] == symbol:
            units[-1][1].append(pos)
        else:
            units.append((symbol, [pos]))
    return units


def align_positions(teacher_ids, student_ids, teacher_tok, student_tok, _roles=None):
    """(teacher_index, student_index) lists of matching positions for one unpadded example, or None.

    The sequences match when they are equal piece for piece (``convert_ids_to_tokens``)
    once special tokens are read by role: CLS (``[CLS]``/``<s>``), SEP
    (``[SEP]``/``</s>``), UNK, MASK. A run of separators is one unit, so MPNet's
    ``</s></s>`` between the two texts matches BERT's single ``[SEP]``; the student's
    separator maps to the first of the teacher's (extra student separators in a run map
    to the teacher's last). Every student position is in ``student_index`` when they match.
    """
    t_roles, s_roles = _roles or (_special_names(teacher_tok), _special_names(student_tok))
    t_ids = teacher_ids.tolist() if torch.is_tensor(teacher_ids) else list(teacher_ids)
    s_ids = student_ids.tolist() if torch.is_tensor(student_ids) else list(student_ids)
    t_units, s_units = _units(t_ids, teacher_tok, t_roles), _units(s_ids, student_tok, s_roles)
    if len(t_units) != len(s_units):
        return None
    t_index, s_index = [], []
    for (t_sym, t_pos), (s_sym, s_pos) in zip(t_units, s_units, strict=True):
        if t_sym != s_sym:
            return None
        for j, p in enumerate(s_pos):
            t_index.append(t_pos[min(j, len(t_pos) - 1)])
            s_index.append(p)
    return t_index, s_index


@dataclass
class AlignedIndex:
    """Per-batch alignment: ``teacher_index`` (B, Ss) gather indices into the teacher's positions;
    ``mask`` (B, Ss) 1 where the student position is real and aligned (use it in the losses)."""

    teacher_index: torch.Tensor
    mask: torch.Tensor
    mode: str


def _real(mask: torch.Tensor) -> list[list[int]]:
    return [row.nonzero().flatten().tolist() for row in mask]


def batch_alignment(batch: dict, teacher_tok, student_tok, mode: str = "strict") -> AlignedIndex:
    """Align every example of a :class:`TwoTokenizerCollator` batch (``strict``) or only [CLS] (``cls``).

    ``strict`` raises :class:`AlembertError` naming how many examples do not align.
    """
    if mode not in MODES:
        raise AlembertError(f"unknown alignment mode {mode!r}; use one of: {', '.join(MODES)}")
    s_ids, t_ids = batch["input_ids"], batch[TEACHER_PREFIX + "input_ids"]
    s_real, t_real = _real(batch["attention_mask"]), _real(batch[TEACHER_PREFIX + "attention_mask"])
    index = torch.zeros(s_ids.shape, dtype=torch.long)
    mask = torch.zeros(s_ids.shape, dtype=torch.long)
    if mode == "cls":
        for b, (sr, tr) in enumerate(zip(s_real, t_real, strict=True)):
            if sr and tr:
                index[b, sr[0]], mask[b, sr[0]] = tr[0], 1
        return AlignedIndex(index.to(s_ids.device), mask.to(s_ids.device), mode)
    roles = (_special_names(teacher_tok), _special_names(student_tok))
    failed = []
    for b, (sr, tr) in enumerate(zip(s_real, t_real, strict=True)):
        pairs = align_positions(t_ids[b, tr], s_ids[b, sr], teacher_tok, student_tok, _roles=roles)
        if pairs is None:
            failed.append(b)
            continue
        t_pos, s_pos = pairs
        cols = torch.tensor([sr[p] for p in s_pos], dtype=torch.long)
        index[b, cols] = torch.tensor([tr[p] for p in t_pos], dtype=torch.long)
        mask[b, cols] = 1
    if failed:
        raise AlembertError(
            f"{len(failed)} of the batch's {len(s_real)} examples tokenise differently for teacher and "
            f"student (first: example {failed[0]}), so token-level losses cannot be aligned; use a recipe "
            "with logit losses only, or mode cls (align [CLS] only)"
        )
    return AlignedIndex(index.to(s_ids.device), mask.to(s_ids.device), mode)


def gather_teacher(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Teacher hidden states (B, St, H) at the student's positions: (B, Ss, H)."""
    return hidden.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))


def gather_teacher_attention(attn: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Teacher attention maps (B, heads, St, St) at the student's query and key positions: (B, heads, Ss, Ss).

    Keys the student has no counterpart for (MPNet's second ``</s>``) are dropped, so a
    gathered row of probabilities may sum to slightly under 1.
    """
    b, h, _, st = attn.shape
    ss = index.shape[1]
    rows = attn.gather(2, index[:, None, :, None].expand(b, h, ss, st))
    return rows.gather(3, index[:, None, None, :].expand(b, h, ss, ss))
