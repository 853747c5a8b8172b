"""TinyBERT's data augmentation (Jiao et al. 2020, Algorithm 1), batched for CPU.

Each text is split into words (runs of word characters; each punctuation mark is a word
of its own) and the whitespace between them is kept, so an unchanged copy is the input
exactly. Every alphabetic word is *replaceable*; in each of the ``n`` copies it is
replaced with probability ``p`` by a candidate drawn uniformly from its top-``k`` list:

* **masked-LM candidates** (``mlm=`` a model with an LM head) for words that are one
  WordPiece: the word is masked in its sentence and the model's ``k`` best whole-word
  tokens are taken. All masked copies of a chunk of sentences go through the model
  together (sorted by length, one forward per ``mlm_batch_size`` rows, LM head applied
  only at the masked positions);
* **embedding neighbours** otherwise (no MLM, or a word of several pieces): the ``k``
  nearest whole-word vocabulary entries by cosine in a model's input-embedding space,
  the word's vector being the mean of its pieces' embeddings. This replaces GloVe, so
  nothing is downloaded. Lists are computed once per distinct WordPiece split (for an
  uncased model: per lowercase word) with one matrix multiply per chunk of new words.

"Whole-word entries" are vocabulary tokens that are alphabetic, not ``##`` pieces and
not special tokens; for an ASCII word only ASCII entries. The word itself is never its
own candidate, so every replacement changes the word. A replacement takes the case
pattern of the word it replaces (``Iraq`` -> ``Iran``, ``USA`` -> ``UK``).

Randomness comes from a numpy Generator seeded with ``(seed, example index)``, so an
example's copies do not depend on batch boundaries. Pairs: ``text_a`` and ``text_b``
are augmented independently from that generator; labels and other columns are copied.
Unlike TinyBERT's script, copies are not de-duplicated: there are always ``n`` of them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F

from alembert.errors import AlembertError
from alembert.models.load import load_tokenizer, quiet_from_pretrained
from alembert.models.resolve import resolve_model

_SPLIT = re.compile(r"(\w+|[^\w\s])")  # capture group: re.split keeps the words at odd indices


def split_words(text: str) -> list[str]:
    """``[gap, word, gap, word, ..., gap]``: words at odd indices; ``"".join`` gives ``text``."""
    return _SPLIT.split(text)


def _match_case(original: str, new: str) -> str:
    if len(original) > 1 and original.isupper():
        return new.upper()
    if original[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


@dataclass
class AugmentStats:
    """What :func:`augment_dataset` did. ``sentences`` counts input texts (two per pair)."""

    examples_in: int
    examples_out: int
    sentences: int
    seconds: float
    sentences_per_s: float
    replaceable_words: int  # alphabetic words with at least one candidate, in the inputs
    mlm_words: int  # of which candidates came from the masked LM
    replaced_fraction: float  # replaced / (replaceable words x n)

    def as_dict(self) -> dict:
        return asdict(self)


def _whole_word_masks(tokenizer) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(whole-word mask, ASCII mask, token strings) over the tokenizer's vocabulary."""
    vocab = tokenizer.get_vocab()
    tokens = [""] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        tokens[i] = token
    special = set(tokenizer.all_special_tokens)
    whole = torch.tensor([t.isalpha() and t not in special for t in tokens])
    ascii_ = torch.tensor([t.isascii() for t in tokens])
    return whole, ascii_, tokens


def load_mlm(name: str | Path):
    """``AutoModelForMaskedLM`` from ``name``; refuses a checkpoint without an LM head."""
    from transformers import AutoModelForMaskedLM

    path = resolve_model(name)
    model, info = quiet_from_pretrained(
        AutoModelForMaskedLM,
        path,
        f"--mlm {name}",
        output_loading_info=True,
        hint="pass a folder saved from a *ForMaskedLM model, or drop --mlm to use embedding neighbours",
    )
    prefix = model.base_model_prefix + "."
    head_missing = sorted(k for k in info["missing_keys"] if not k.startswith(prefix))
    if head_missing:
        raise AlembertError(
            f"--mlm {name}: the checkpoint has no masked-LM head ({head_missing[0]} and "
            f"{len(head_missing) - 1} more head weights missing; it would be random); pass a model "
            "saved with its LM head (e.g. BertForMaskedLM), or drop --mlm to use embedding "
            "neighbours from --embeddings"
        )
    return model.eval()


def _mlm_logits(model, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits at one position per row; the LM head runs only on those positions."""
    rows = torch.arange(len(ids))
    head = next((getattr(model, a) for a in ("cls", "lm_head") if getattr(model, a, None) is not None), None)
    if head is not None and model.base_model is not model:
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        return head(hidden[rows, pos])
    return model(input_ids=ids, attention_mask=mask).logits[rows, pos]


class Augmenter:
    """Candidate lists for words (embedding neighbours, masked-LM predictions) and copies.

    ``embeddings``: model whose input embeddings give the neighbours (alias, folder or
    hub id); ``mlm``: optional model with a masked-LM head; ``k``: candidates per word;
    ``max_length``: MLM context in tokens (words past it use embedding neighbours).
    """

    def __init__(
        self,
        embeddings: str | Path = "minilm-l6",
        mlm: str | Path | None = None,
        k: int = 15,
        max_length: int = 128,
        mlm_batch_size: int = 64,
    ):
        from transformers import AutoModel

        if k < 1:
            raise AlembertError(f"k={k}: need at least one candidate per word; pass --k 1 or more")
        self.k, self.max_length, self.mlm_batch_size = k, max_length, mlm_batch_size
        self.mlm = load_mlm(mlm) if mlm is not None else None
        if self.mlm is not None:
            limit = getattr(self.mlm.config, "max_position_embeddings", max_length)
            self.max_length = min(max_length, limit)
        self.mlm_tok = load_tokenizer(mlm) if mlm is not None else None
        self.emb_tok = load_tokenizer(embeddings)
        if mlm is not None and resolve_model(mlm) == resolve_model(embeddings):
            weight = self.mlm.get_input_embeddings().weight
        else:
            weight = (
                quiet_from_pretrained(AutoModel, resolve_model(embeddings), f"--embeddings {embeddings}")
                .get_input_embeddings()
                .weight
            )
        self._emb = weight.detach().float().clone()
        whole, self._emb_ascii, self._emb_tokens = _whole_word_masks(self.emb_tok)
        whole = whole[: len(self._emb)]
        self._emb_ids = torch.nonzero(whole).squeeze(1)  # columns of the neighbour search
        self._emb_col_ascii = self._emb_ascii[self._emb_ids]
        self._emb_unit = F.normalize(self._emb[self._emb_ids], dim=1)
        self._emb_col = {self._emb_tokens[i]: c for c, i in enumerate(self._emb_ids.tolist())}
        if self.mlm is not None:
            whole_m, self._mlm_ascii, self._mlm_tokens = _whole_word_masks(self.mlm_tok)
            self._mlm_whole = whole_m
        self._pieces_cache: dict[tuple[int, str], tuple[int, ...]] = {}
        self._nbr_cache: dict[tuple[int, ...], list[str]] = {}

    # ------------------------------------------------------------------ pieces

    def _pieces(self, tokenizer, words: Iterable[str]) -> list[tuple[int, ...]]:
        """WordPiece ids of each word (cached per tokenizer and word)."""
        words = list(words)
        key = id(tokenizer)
        new = list(dict.fromkeys(w for w in words if (key, w) not in self._pieces_cache))
        if new:
            for w, ids in zip(new, tokenizer(new, add_special_tokens=False)["input_ids"], strict=True):
                self._pieces_cache[key, w] = tuple(ids)
        return [self._pieces_cache[key, w] for w in words]

    # --------------------------------------------------------- embedding neighbours

    def neighbours(self, words: Iterable[str], chunk: int = 512) -> dict[str, list[str]]:
        """The ``k`` nearest whole-word entries of each word by cosine (input embeddings)."""
        words = list(dict.fromkeys(words))
        pieces = self._pieces(self.emb_tok, words)
        unk = self.emb_tok.unk_token_id
        todo = list(dict.fromkeys(p for p in pieces if p not in self._nbr_cache))
        for p in todo:
            if not p or unk in p:
                self._nbr_cache[p] = []
        todo = [p for p in todo if p not in self._nbr_cache]
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            vecs = torch.stack([self._emb[list(p)].mean(0) for p in part])
            sims = F.normalize(vecs, dim=1) @ self._emb_unit.T
            words_n = ["".join(self._emb_tokens[i].removeprefix("##") for i in p) for p in part]
            ascii_rows = torch.tensor([w.isascii() for w in words_n])
            sims.masked_fill_(ascii_rows[:, None] & ~self._emb_col_ascii[None, :], -torch.inf)
            own = [(r, self._emb_col[w]) for r, w in enumerate(words_n) if w in self._emb_col]
            if own:  # a word is never its own neighbour
                sims[torch.tensor(own).T.unbind()] = -torch.inf
            top = sims.topk(min(self.k, sims.shape[1] - 1), dim=1)
            ids, ok = self._emb_ids[top.indices].tolist(), top.values.isfinite().tolist()
            for p, row_ids, row_ok in zip(part, ids, ok, strict=True):
                self._nbr_cache[p] = [self._emb_tokens[i] for i, good in zip(row_ids, row_ok, strict=True) if good]
        return {w: self._nbr_cache[p] for w, p in zip(words, pieces, strict=True)}

    # ------------------------------------------------------------ MLM candidates

    @torch.inference_mode()
    def mlm_candidates(self, sentences: list[list[str]]) -> list[dict[int, list[str]]]:
        """Per sentence (its ``split_words`` parts): {word index: top-k MLM tokens} for the
        alphabetic single-piece words inside the context window."""
        out: list[dict[int, list[str]]] = [{} for _ in sentences]
        if self.mlm is None:
            return out
        tok = self.mlm_tok
        rows = []  # (sentence, word index, ids, position, original id)
        for s, parts in enumerate(sentences):
            words = parts[1::2]
            pieces = self._pieces(tok, words)
            ids = [tok.cls_token_id]
            for p in pieces:
                ids.extend(p)
            ids = ids[: self.max_length - 1] + [tok.sep_token_id]
            offset = 1
            for j, (w, p) in enumerate(zip(words, pieces, strict=True)):
                if w.isalpha() and len(p) == 1 and p[0] != tok.unk_token_id and offset < len(ids) - 1:
                    rows.append((s, j, ids, offset, p[0]))
                offset += len(p)
        rows.sort(key=lambda r: len(r[2]))
        for start in range(0, len(rows), self.mlm_batch_size):
            part = rows[start : start + self.mlm_batch_size]
            width = max(len(r[2]) for r in part)
            ids = torch.full((len(part), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for i, (_, _, seq, pos, _) in enumerate(part):
                ids[i, : len(seq)] = torch.tensor(seq)
                ids[i, pos] = tok.mask_token_id
                mask[i, : len(seq)] = 1
            pos = torch.tensor([r[3] for r in part])
            logits = _mlm_logits(self.mlm, ids, mask, pos).float()
            vocab = min(logits.shape[1], len(self._mlm_whole))
            logits = logits[:, :vocab]
            allowed = self._mlm_whole[:vocab].expand(len(part), vocab).clone()
            for i, (_, _, _, _, orig) in enumerate(part):
                if self._mlm_tokens[orig].isascii():
                    allowed[i] &= self._mlm_ascii[:vocab]
                if orig < vocab:
                    allowed[i, orig] = False
            logits = logits.masked_fill(~allowed, -torch.inf)
            top = logits.topk(min(self.k, vocab), dim=1)
            for i, (s, j, _, _, _) in enumerate(part):
                ok = torch.isfinite(top.values[i])
                out[s][j] = [self._mlm_tokens[t] for t in top.indices[i][ok].tolist()]
        return out

    # ------------------------------------------------------------------ copies

    def candidates(self, texts: list[str]) -> tuple[list[list[str]], list[list[list[str]]], int]:
        """(split texts, per text per word its candidate list, number from the MLM)."""
        split = [split_words(t) for t in texts]
        from_mlm = self.mlm_candidates(split)
        need = {
            w
            for parts, m in zip(split, from_mlm, strict=True)
            for j, w in enumerate(parts[1::2])
            if w.isalpha() and not m.get(j)
        }
        nbrs = self.neighbours(sorted(need))
        cands = [
            [m.get(j) or (nbrs[w] if w.isalpha() else []) for j, w in enumerate(parts[1::2])]
            for parts, m in zip(split, from_mlm, strict=True)
        ]
        return split, cands, sum(len(m) for m in from_mlm)


def make_copies(
    parts: list[str], cands: list[list[str]], n: int, p: float, rng: np.random.Generator
) -> tuple[list[str], int]:
    """``n`` copies of one split text, and how many words were replaced in all of them.
    Two uniform draws per (copy, word), whether or not the word is replaceable."""
    u, c = rng.random((n, len(cands))), rng.random((n, len(cands)))
    sizes = np.array([len(x) for x in cands], dtype=np.int64)
    replace = (u < p) & (sizes > 0)
    choice = (c * np.maximum(sizes, 1)).astype(np.int64)
    copies = []
    for r in range(n):
        new = list(parts)
        for j in np.flatnonzero(replace[r]):
            new[2 * j + 1] = _match_case(parts[2 * j + 1], cands[j][choice[r, j]])
        copies.append("".join(new))
    return copies, int(replace.sum())


def augment_dataset(
    ds: datasets.Dataset,
    augmenter: Augmenter | None = None,
    *,
    n: int = 20,
    p: float = 0.4,
    seed: int = 0,
    k: int = 15,
    embeddings: str | Path = "minilm-l6",
    mlm: str | Path | None = None,
    chunk_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[datasets.Dataset, AugmentStats]:
    """Each example of ``ds`` (columns ``text_a``, optional ``text_b``, label, ...) followed
    by ``n`` augmented copies; the other columns are repeated. Builds an
    :class:`Augmenter` from ``embeddings``/``mlm``/``k`` unless one is given.
    ``progress(done, total)`` is called after each chunk of examples."""
    if n < 0 or not 0.0 <= p <= 1.0:
        raise AlembertError(f"n={n}, p={p}: need n >= 0 copies and 0 <= p <= 1; fix --n / --p")
    aug = augmenter or Augmenter(embeddings=embeddings, mlm=mlm, k=k)
    text_cols = [c for c in ("text_a", "text_b") if c in ds.column_names]
    if "text_a" not in text_cols:
        raise AlembertError(f"dataset has no text_a column (columns: {', '.join(ds.column_names)})")
    out = {c: [] for c in ds.column_names}
    replaced = replaceable = mlm_words = 0
    start = time.perf_counter()
    for lo in range(0, len(ds), chunk_size):
        batch = ds[lo : lo + chunk_size]
        size = len(batch["text_a"])
        texts = [t for i in range(size) for t in (batch[c][i] for c in text_cols)]
        split, cands, from_mlm = aug.candidates(texts)
        mlm_words += from_mlm
        for i in range(size):
            rng = np.random.default_rng((seed, lo + i))
            for col in ds.column_names:
                if col not in text_cols:
                    out[col].extend([batch[col][i]] * (n + 1))
            for t, col in enumerate(text_cols):
                idx = i * len(text_cols) + t
                copies, hits = make_copies(split[idx], cands[idx], n, p, rng)
                out[col].extend([batch[col][i], *copies])
                replaced += hits
                replaceable += sum(1 for x in cands[idx] if x)
        if progress is not None:
            progress(lo + size, len(ds))
    seconds = time.perf_counter() - start
    result = datasets.Dataset.from_dict(out, features=ds.features)
    sentences = len(ds) * len(text_cols)
    stats = AugmentStats(
        examples_in=len(ds),
        examples_out=len(result),
        sentences=sentences,
        seconds=round(seconds, 3),
        sentences_per_s=round(sentences / max(seconds, 1e-9), 1),
        replaceable_words=replaceable,
        mlm_words=mlm_words,
        replaced_fraction=round(replaced / max(replaceable * n, 1), 4),
    )
    return result, stats
