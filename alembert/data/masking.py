"""Dynamic masking for masked-LM distillation (BERT's 15% with 80/10/10).

:class:`MLMCollator` pads a list of features and draws new masks for every batch,
so every epoch sees different masks (RoBERTa's dynamic masking). It is equivalent
in spirit to transformers' ``DataCollatorForLanguageModeling`` but keeps its own
``torch.Generator``: the masks are reproducible from the seed and do not touch (or
depend on) the global RNG.

Each non-special, non-padding token is picked with probability ``mlm_probability``;
a picked token becomes ``[MASK]`` with probability ``mask_ratio``, a random token
(uniform over the vocabulary without the special tokens) with ``random_ratio``, and
stays unchanged otherwise. ``labels`` hold the original id at picked positions and
-100 elsewhere.
"""

from __future__ import annotations

import hashlib
import secrets

import torch

from alembert.errors import AlembertError
from alembert.losses.ce import IGNORE_INDEX

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, batch)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class MLMCollator:
    """``collate_fn`` for masked-LM batches: returns input_ids, attention_mask, (token_type_ids), labels.

    ``seed``: an int, a ``torch.Generator`` (its initial seed is used; it becomes the collator's own
    generator and is reseeded every batch) or None (a fresh random seed). Each batch's masks come
    from (seed, epoch, the batch's position in the epoch), so they do not depend on what was
    collated before: a run resumed in the middle of an epoch, whose loader skips the batches
    already trained on without collating them, draws the masks the uninterrupted run drew
    (:meth:`set_epoch` with the position to start at). In DataLoader workers the position counts
    the batches of all the workers (they take batches in turn). :meth:`mask` called directly
    draws from the generator as is.
    """

    def __init__(
        self,
        tokenizer,
        mlm_probability: float = 0.15,
        mask_ratio: float = 0.8,
        random_ratio: float = 0.1,
        seed: int | torch.Generator | None = None,
        pad_to_multiple_of: int | None = None,
    ):
        if tokenizer.mask_token_id is None:
            raise AlembertError(
                f"tokenizer {type(tokenizer).__name__} has no mask token; masked-LM needs one (BERT-style [MASK])"
            )
        if not 0 < mlm_probability <= 1:
            raise AlembertError(f"mlm_probability must be in (0, 1], got {mlm_probability}")
        if mask_ratio < 0 or random_ratio < 0 or mask_ratio + random_ratio > 1:
            raise AlembertError(
                f"mask_ratio ({mask_ratio}) and random_ratio ({random_ratio}) must be >= 0 and sum to at most 1"
            )
        self.tokenizer = tokenizer
        self.mlm_probability, self.mask_ratio, self.random_ratio = mlm_probability, mask_ratio, random_ratio
        self.pad_to_multiple_of = pad_to_multiple_of
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        allowed = torch.ones(len(tokenizer), dtype=torch.bool)
        allowed[self.special_ids] = False
        self.random_ids = allowed.nonzero().squeeze(1)
        if isinstance(seed, torch.Generator):
            self.generator, self.seed = seed, seed.initial_seed()
        else:
            self.seed = secrets.randbits(62) if seed is None else int(seed)
            self.generator = torch.Generator().manual_seed(self.seed)
        self.epoch, self.start, self.calls = 0, 0, 0

    def set_epoch(self, epoch: int, batch: int = 0) -> None:
        """The next batch collated is batch ``batch`` (0-based) of epoch ``epoch``."""
        self.epoch, self.start, self.calls = epoch, batch, 0

    def _seed_next_batch(self) -> None:
        info = torch.utils.data.get_worker_info()
        position = self.start + (self.calls if info is None else self.calls * info.num_workers + info.id)
        self.calls += 1
        rank = _rank()  # processes that each collate their slice of a batch draw different masks
        self.generator.manual_seed(_mix(self.seed, self.epoch, position, *([rank] if rank else [])))

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        feats = [
            {k: (v.tolist() if torch.is_tensor(v) else v) for k, v in f.items() if k in INPUT_KEYS} for f in features
        ]
        batch = self.tokenizer.pad(feats, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of)
        batch = {k: v.long() for k, v in batch.items()}
        self._seed_next_batch()
        input_ids, labels = self.mask(batch["input_ids"], batch["attention_mask"])
        return {**batch, "input_ids": input_ids, "labels": labels}

    def mask(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked input_ids, labels) for a padded batch; ``input_ids`` is not modified."""
        g = self.generator
        maskable = ~torch.isin(input_ids, self.special_ids)
        if attention_mask is not None:
            maskable &= attention_mask.bool()
        picked = (torch.rand(input_ids.shape, generator=g) < self.mlm_probability) & maskable
        labels = input_ids.masked_fill(~picked, IGNORE_INDEX)
        u = torch.rand(input_ids.shape, generator=g)
        to_mask = picked & (u < self.mask_ratio)
        to_random = picked & (u >= self.mask_ratio) & (u < self.mask_ratio + self.random_ratio)
        random_tokens = self.random_ids[torch.randint(len(self.random_ids), input_ids.shape, generator=g)]
        out = input_ids.masked_fill(to_mask, self.tokenizer.mask_token_id)
        out = torch.where(to_random, random_tokens, out)
        return out, labels
