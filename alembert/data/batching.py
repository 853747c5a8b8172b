"""Batches with dynamic padding, grouped by length for training.

Length grouping (the idea of DistilBERT's grouped batch sampler): shuffle, cut
into groups of ``group_batches`` batches, sort each group by length, split into
batches, shuffle the batch order. Every example appears exactly once per epoch;
padding waste drops because a batch holds similar lengths.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler
from transformers import DataCollatorWithPadding

from alembert.data.tokenize import MODEL_COLUMNS


class LengthGroupedBatchSampler(Sampler[list[int]]):
    def __init__(
        self, lengths: list[int], batch_size: int, seed: int = 0, group_batches: int = 50, shuffle: bool = True
    ):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_batches = group_batches
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
        group = self.batch_size * self.group_batches
        batches = []
        for start in range(0, n, group):
            chunk = sorted(order[start : start + group], key=lambda i: -self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        return iter(batches)


class RandomBatchSampler(LengthGroupedBatchSampler):
    """Plain shuffled batches (``group_by_length: false``), same interface."""

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        return iter([order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)])


def model_inputs(ds):
    """The tokenised dataset restricted to the columns a model takes, as torch tensors."""
    return ds.with_format("torch", columns=model_columns(ds))


def batched_loader(ds, columns: list[str], collate_fn, batch_size: int, seed: int, group_by_length: bool = True):
    """(DataLoader, sampler) over ``ds`` (which has a ``length`` column): the one loader builder of
    every training command. Keep the sampler to call ``set_epoch`` each epoch."""
    cls = LengthGroupedBatchSampler if group_by_length else RandomBatchSampler
    sampler = cls(ds["length"], batch_size, seed=seed)
    # A private generator: creating the loader's iterator must not draw from the global RNG,
    # or a resumed run would shift every dropout mask after the resume point.
    loader = DataLoader(
        ds.with_format("torch", columns=columns),
        batch_sampler=sampler,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler


def model_columns(ds) -> list[str]:
    """The columns of a tokenised dataset that a model takes (and ``idx``, the teacher cache's key)."""
    return [c for c in (*MODEL_COLUMNS, "idx") if c in ds.column_names and c != "length"]


def train_loader(ds, tokenizer, batch_size: int, seed: int, group_by_length: bool = True):
    """(DataLoader, sampler) of a tokenised dataset, padded by the tokenizer."""
    return batched_loader(ds, model_columns(ds), DataCollatorWithPadding(tokenizer), batch_size, seed, group_by_length)


def eval_batches(ds, tokenizer, batch_size: int):
    """Yield (indices, padded batch) in length order, for fast inference; callers restore order."""
    lengths = ds["length"]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    collate = DataCollatorWithPadding(tokenizer)
    data = model_inputs(ds)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        cols = data[idx]
        yield idx, collate([{k: v[j] for k, v in cols.items()} for j in range(len(idx))])
