"""Teacher and student with different tokenizers: two tokenisations and their alignment.

When the two tokenizers share a vocabulary (:func:`same_tokenization`), one tokenisation
serves both models, as before. Otherwise :func:`tokenize_two` tokenises the raw text with
each, the student's columns under their usual names and the teacher's as ``teacher_*``;
:class:`TwoTokenizerCollator` pads each side with its own pad id.

Logit losses need nothing more. Token-level losses (hidden, attention, cosine) need to
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
from pathlib import Path

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from alembert.data.batching import LengthGroupedBatchSampler, RandomBatchSampler
from alembert.data.tokenize import cached_map, data_fingerprint, tokenizer_fingerprint
from alembert.errors import AlembertError

TEACHER_PREFIX = "teacher_"
_STUDENT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels", "idx")
_TEACHER_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
MODES = ("strict", "cls")


def same_tokenization(teacher_tok, student_tok) -> bool:
    """True when both tokenizers turn any text into the same ids (one tokenisation serves both)."""
    if teacher_tok is student_tok:
        return True
    return teacher_tok.get_vocab() == student_tok.get_vocab() and tokenizer_fingerprint(teacher_tok) == tokenizer_fingerprint(student_tok)


# ----------------------------------------------------------------------------- tokenising


def tokenize_two(ds: Dataset, teacher_tok, student_tok, max_length: int, cache: Path | None = None,
                 teacher_max_length: int | None = None) -> Dataset:
    """Tokenise ``text_a`` (``text_b``, ``label``) with each tokenizer, both truncated to ``max_length``.

    Pairs that reach ``max_length`` lose one more text piece on MPNet's side (its
    ``</s></s>`` takes a place), so they no longer align; ``teacher_max_length``
    (e.g. ``max_length + 1``) gives the teacher the room to keep the same text.

    Columns: ``input_ids``, ``attention_mask`` (``token_type_ids``), ``labels``, ``length``
    for the student; ``teacher_input_ids``, ``teacher_attention_mask``
    (``teacher_token_type_ids`` when the teacher's tokenizer makes them). Unpadded;
    cached under ``<cache>/tokenized/two-<key>.arrow``, keyed by both tokenizers,
    the max length and the data.
    """
    teacher_max = teacher_max_length or max_length
    key = f"two-{tokenizer_fingerprint(student_tok)}-{tokenizer_fingerprint(teacher_tok)}-{max_length}-{teacher_max}-{data_fingerprint(ds)}"
    pair = "text_b" in ds.column_names

    def encode(batch):
        second = batch["text_b"] if pair else None
        out = dict(student_tok(batch["text_a"], second, truncation=True, max_length=max_length))
        out["length"] = [len(ids) for ids in out["input_ids"]]
        teacher = teacher_tok(batch["text_a"], second, truncation=True, max_length=teacher_max)
        out.update({TEACHER_PREFIX + k: v for k, v in teacher.items() if k in _TEACHER_COLUMNS})
        if "label" in batch:
            out["labels"] = batch["label"]
        return out

    return cached_map(ds, encode, key, "tokenising (teacher and student)", cache)


class TwoTokenizerCollator:
    """Pad the student's columns and the ``teacher_*`` columns separately, each with its own pad id."""

    def __init__(self, teacher_tok, student_tok):
        self.teacher = DataCollatorWithPadding(teacher_tok)
        self.student = DataCollatorWithPadding(student_tok)

    def __call__(self, features: list[dict]) -> dict:
        student = [{k: v for k, v in f.items() if k in _STUDENT_COLUMNS} for f in features]
        teacher = [{k[len(TEACHER_PREFIX):]: v for k, v in f.items() if k.startswith(TEACHER_PREFIX)} for f in features]
        batch = dict(self.student(student))
        batch.update({TEACHER_PREFIX + k: v for k, v in self.teacher(teacher).items()})
        return batch


def two_tokenizer_columns(ds: Dataset) -> Dataset:
    """The :func:`tokenize_two` dataset restricted to model columns (both sides), as torch tensors."""
    keep = set(_STUDENT_COLUMNS) | {TEACHER_PREFIX + c for c in _TEACHER_COLUMNS}
    return ds.with_format("torch", columns=[c for c in ds.column_names if c in keep])


def two_tokenizer_loader(ds, teacher_tok, student_tok, batch_size: int, seed: int, group_by_length: bool = True):
    """(DataLoader, sampler) over a :func:`tokenize_two` dataset, like :func:`alembert.data.batching.train_loader`."""
    cls = LengthGroupedBatchSampler if group_by_length else RandomBatchSampler
    sampler = cls(ds["length"], batch_size, seed=seed)
    loader = DataLoader(two_tokenizer_columns(ds), batch_sampler=sampler, collate_fn=TwoTokenizerCollator(teacher_tok, student_tok),
                        generator=torch.Generator().manual_seed(seed))
    return loader, sampler


# ----------------------------------------------------------------------------- alignment


def _special_names(tokenizer) -> dict[int, str]:
    """Special token id -> role shared across families (``<s>`` and ``[CLS]`` are both CLS)."""
    roles = {}
    for attr, role in (("bos_token", "CLS"), ("eos_token", "SEP"), ("cls_token", "CLS"), ("sep_token", "SEP"),
                       ("unk_token", "UNK"), ("mask_token", "MASK"), ("pad_token", "PAD")):
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
