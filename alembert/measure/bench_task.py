"""What ``alembert bench`` needs of a task, as data: its dev set, how to load and score a model
on it, real texts for the timed inputs and how to time them (:class:`BenchTask`). Each task kind
builds its own (``classification/bench.py``, ``qa/bench.py``, ``embedding/bench.py``) through its
``bench`` entry point; :mod:`alembert.measure.run` measures every model with it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from alembert.measure.size import count_params
from alembert.measure.speed import Workload, batch_workload, fixed_length_inputs

SERVE_SENTENCES = 1024  # dev texts of a classifier's serving bench (SST-2 dev: all 872)
THROUGHPUT_SENTENCES = 256  # sentences per timed throughput pass of an embedding model (8 batches of 32)


@dataclass
class BenchTask:
    name: str
    main_metric: str
    dev_examples: int
    texts_a: list[str]
    texts_b: list[str] | None
    seq_len: int  # the task's usual max length (the timed length is the kind's default_max_length of the reference)
    load: Callable[[Path, int], tuple[object, object]]  # (resolved folder, threads) -> (model, tokenizer)
    score: Callable[[object, object, int], dict[str, float]]  # (model, tokenizer, max length) -> dev metrics
    # (task, model, tokenizer, seq_len, batch_size) -> the timed Workload
    workload: Callable[..., Workload] = field(default=lambda *a: fixed_length_workload(*a))
    count: Callable[[Path, object], tuple[int, int]] = field(
        default=lambda path, config: count_params(config)
    )  # params
    timing: str | None = None  # how the inputs are timed, for the report (None: fixed length)
    # real dev texts, in file order, for the serving bench (alembert/measure/serving.py); None: not served
    serve_a: list[str] | None = None
    serve_b: list[str] | None = None


def fixed_length_workload(bt: BenchTask, model, tokenizer, seq_len: int, batch_size: int) -> Workload:
    """Real dev texts padded/truncated to exactly ``seq_len`` tokens, the same shapes for every model."""
    return batch_workload(model, fixed_length_inputs(tokenizer, bt.texts_a, bt.texts_b, seq_len), batch_size)


def cycle(column: list[str], n: int) -> list[str]:
    return [column[i % len(column)] for i in range(n)]
