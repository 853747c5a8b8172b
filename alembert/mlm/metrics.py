"""How well a masked LM predicts held-out text: masked-token top-k accuracy and pseudo-perplexity.

* **top-k accuracy**: the share of masked tokens whose original token is among the model's ``k``
  most likely; BERT-style masking (80% ``[MASK]``, 10% random, 10% kept) with masks fixed by a seed,
  so two evaluations of one model agree and two models see the same masks.
* **pseudo-perplexity** (Salazar et al. 2020, "Masked Language Model Scoring"): each token of a
  sequence is masked alone and scored given all the others; ``exp`` of the mean negative
  log-likelihood over the tokens. No random masks and no 10%/10% noise: the score of the text
  itself. It costs one forward per token, so it runs on a few sequences only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    """How many of the ``[n]`` ``labels`` rank among the first ``k`` of their ``[n, vocab]`` ``logits``, per
    ``k``: a label's rank is the number of logits strictly larger than its own, so a label tied with
    others is found when fewer than ``k`` beat it (whatever the order a sort would give the ties).

    Example::

        >>> topk_correct(torch.tensor([[0.1, 2.0, 1.0], [3.0, 0.0, 1.0]]), torch.tensor([2, 0]), ks=(1, 2))
        {1: 1, 2: 2}
    """
    gold = logits.gather(1, labels.unsqueeze(1))
    rank = (logits > gold).sum(-1)
    return {k: int((rank < k).sum()) for k in ks}


@torch.no_grad()
def masked_accuracy(module, batches, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """``{"top1": .., "top5": .., "loss": .., "masked": n}`` of ``module``
    (:class:`~alembert.mlm.module.MaskedLMModule`) over collated ``batches`` (with fixed masks)."""
    correct = dict.fromkeys(ks, 0)
    n, nll = 0, 0.0
    for batch in batches:
        logits, labels = module.masked_logits(batch)
        logits = logits.float()
        for k, c in topk_correct(logits, labels, ks).items():
            correct[k] += c
        nll += float(F.cross_entropy(logits, labels, reduction="sum"))
        n += len(labels)
    return {**{f"top{k}": correct[k] / max(n, 1) for k in ks}, "loss": nll / max(n, 1), "masked": n}


def one_mask_copies(input_ids: torch.Tensor, maskable: torch.Tensor, mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(copies ``[m, L]``, positions ``[m]``): one copy of the ``[L]`` sequence per maskable position,
    that position replaced by ``mask_id``."""
    positions = maskable.nonzero().flatten()
    copies = input_ids.repeat(len(positions), 1)
    copies[torch.arange(len(positions)), positions] = mask_id
    return copies, positions


@torch.no_grad()
def pseudo_log_likelihood(module, sequences, mask_id: int, special_ids, batch_size: int = 64) -> tuple[float, int]:
    """(sum of log p(token | the rest) over every non-special token, number of tokens) of ``sequences``
    (a list of ``[L]`` input-id tensors), each token masked alone."""
    device = next(module.parameters()).device
    special = torch.tensor(sorted(special_ids))
    total, count = 0.0, 0
    for ids in sequences:
        copies, positions = one_mask_copies(ids, ~torch.isin(ids, special), mask_id)
        for start in range(0, len(positions), batch_size):
            rows, pos = copies[start : start + batch_size], positions[start : start + batch_size]
            labels = torch.full_like(rows, -100)
            labels[torch.arange(len(pos)), pos] = ids[pos]
            batch = {"input_ids": rows, "attention_mask": torch.ones_like(rows), "labels": labels}
            logits, gold = module.masked_logits({k: v.to(device) for k, v in batch.items()})
            total += float(torch.log_softmax(logits.float(), -1).gather(1, gold.unsqueeze(1)).sum())
            count += len(pos)
    return total, count


def pseudo_perplexity(module, sequences, mask_id: int, special_ids, batch_size: int = 64) -> float:
    """``exp(-mean log p(token | the rest))`` over the non-special tokens of ``sequences``."""
    total, count = pseudo_log_likelihood(module, sequences, mask_id, special_ids, batch_size)
    return math.exp(-total / count) if count else float("nan")
