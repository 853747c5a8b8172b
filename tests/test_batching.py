from collections import Counter

from datasets import Dataset

from alembert.data.batching import LengthGroupedBatchSampler
from alembert.data.tokenize import tokenize_dataset


def test_grouped_sampler_yields_every_example_once_per_epoch():
    lengths = [(i * 37) % 101 + 1 for i in range(1000)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=16, seed=3, group_batches=5)
    seen_epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        flat = [i for b in batches for i in b]
        assert Counter(flat) == Counter(range(1000))
        assert len(batches) == len(sampler)
        seen_epochs.append(flat)
    assert seen_epochs[0] != seen_epochs[1]  # reshuffled each epoch


def test_grouped_sampler_reduces_padding():
    lengths = [(i * 37) % 101 + 1 for i in range(2000)]

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    grouped = list(LengthGroupedBatchSampler(lengths, 32, seed=0))
    random = [list(range(2000))[i : i + 32] for i in range(0, 2000, 32)]
    assert padding(grouped) < 0.3 * padding(random)


def test_tokenise_cache_key_changes_with_max_length(bert_tokenizer, tmp_path):
    ds = Dataset.from_dict({"text_a": ["a b c d e f g h i j k l m n o p"] * 4, "label": [0, 1, 0, 1]})
    a = tokenize_dataset(ds, bert_tokenizer, 8, tmp_path)
    b = tokenize_dataset(ds, bert_tokenizer, 12, tmp_path)
    a2 = tokenize_dataset(ds, bert_tokenizer, 8, tmp_path)
    assert a["length"][0] == 8 and b["length"][0] == 12
    assert a.cache_files[0]["filename"] != b.cache_files[0]["filename"]
    assert a.cache_files[0]["filename"] == a2.cache_files[0]["filename"]
    assert a["labels"] == [0, 1, 0, 1]
