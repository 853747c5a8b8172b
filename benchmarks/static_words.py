"""A static student's start on a word-level vocabulary: does a token table that knows whole words
search better than one of the teacher's subwords?

A subword table averages ``foot`` and ``##ball`` for "football": the word's meaning is whatever
the two pieces' vectors add up to. model2vec's answer is a vocabulary of whole words, each given
the teacher's embedding of the word as a sentence. This script builds such a start the way
alembert's static builder (``alembert/students/static.py``) builds its subword one, so the two are
trained and scored alike:

- the words: the ``--words`` most frequent whitespace/punctuation pieces of the run's texts (after
  the teacher tokenizer's own normalisation) that its vocabulary splits into two or more tokens
  and that occur at least ``--min-count`` times;
- the tokenizer: the teacher's WordPiece vocabulary with those words appended (WordPiece takes the
  longest match, so a listed word is one token; everything else tokenises as before);
- the vectors: each subword as the builder computes it (alone between [CLS]/[SEP]); each added
  word as the teacher's sentence embedding of the word (its subwords between [CLS]/[SEP]); PCA to
  ``--dim`` over all of them, kept as the folder's teacher map; SIF weights from the token counts
  of the run's texts under the new tokenizer.

The folder it writes trains further like any static student::

    python benchmarks/static_words.py --teacher mpnet-base --dim 256 --words 30000 \\
      --corpus squad ../shared/data/corpus --transfer-task stsb,mrpc,rte,cola,sst2 --output runs/words-256-init
    alembert distill-general --teacher mpnet-base --student runs/words-256-init --recipe embed-mse ... \\
      --output runs/words-256
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--teacher", required=True, help="a sentence-transformers folder or alias")
    p.add_argument("--dim", type=int, default=256, help="the table's width (PCA)")
    p.add_argument("--words", type=int, default=30000, help="whole words to add to the vocabulary")
    p.add_argument("--min-count", type=int, default=3, help="a word must occur this often in the texts")
    p.add_argument("--corpus", nargs="+", default=["squad"], help="the run's texts: as distill-general's --corpus")
    p.add_argument("--transfer-task", default="", help="the run's texts: as distill-general's --transfer-task")
    p.add_argument("--max-texts", type=int, help="the run's texts: as distill-general's --max-texts")
    p.add_argument("--max-length", type=int, default=128, help="tokens per text when counting (the run's)")
    p.add_argument("--output", required=True, help="the static folder to write (must not exist)")
    return p.parse_args(argv)


def word_counts(tok, texts: list[str]) -> Counter:
    """Pieces of the texts as the tokenizer's normaliser and pre-tokeniser cut them (what WordPiece
    then splits into subwords)."""
    backend = tok.backend_tokenizer
    counts: Counter = Counter()
    for text in texts:
        norm = backend.normalizer.normalize_str(text) if backend.normalizer else text
        counts.update(w for w, _ in backend.pre_tokenizer.pre_tokenize_str(norm))
    return counts


def with_words(tok, words: list[str]):
    """The teacher's tokenizer with ``words`` appended to its WordPiece vocabulary (new ids after every
    existing id, added tokens included)."""
    from transformers import AutoTokenizer

    state = json.loads(tok.backend_tokenizer.to_str())
    if state["model"]["type"] != "WordPiece":
        raise SystemExit(
            f"a word-level vocabulary is added to WordPiece tokenizers; this one is {state['model']['type']}"
        )
    vocab = state["model"]["vocab"]
    next_id = 1 + max([*vocab.values(), *(t["id"] for t in state.get("added_tokens", []))])
    for w in words:
        vocab[w] = next_id
        next_id += 1
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        for stale in ("vocab.txt", "vocab.json"):  # the slow tokenizer's files: the old vocabulary
            (Path(tmp) / stale).unlink(missing_ok=True)
        (Path(tmp) / "tokenizer.json").write_text(json.dumps(state))
        return AutoTokenizer.from_pretrained(tmp)


@torch.inference_mode()
def word_vectors(embedder, tok, words: list[str], batch_size: int = 256) -> np.ndarray:
    """(len(words), width): the teacher's sentence embedding of each word alone."""
    out = []
    embedder.eval()
    for start in range(0, len(words), batch_size):
        enc = tok(words[start : start + batch_size], padding=True, return_tensors="pt")
        out.append(embedder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).embeddings.float())
    return torch.cat(out).numpy()


def main(argv=None) -> int:
    from alembert.embedding.data import load_texts
    from alembert.models.sentence import load_embedding_model
    from alembert.models.static import StaticEmbeddingModel
    from alembert.students.static import pca_vectors, sif_weights, special_ids, token_vectors

    args = parse(argv)
    out = Path(args.output)
    if out.exists():
        raise SystemExit(f"--output {out} exists; choose another")
    start = time.perf_counter()
    texts = load_texts(args.corpus, [t for t in args.transfer_task.split(",") if t], None, None, args.max_texts)
    embedder, tok = load_embedding_model(args.teacher)
    base_vocab = tok.backend_tokenizer.get_vocab()
    counts = word_counts(tok, texts)
    words = [w for w, c in counts.most_common() if c >= args.min_count and w not in base_vocab][: args.words]
    new_tok = with_words(tok, words)
    vocab = len(new_tok)
    specials = special_ids(new_tok, vocab)
    print(f"{len(texts):,} texts, {len(counts):,} distinct pieces; {len(words):,} words added -> {vocab:,} tokens")
    vectors = np.zeros((vocab, embedder.dim), np.float32)
    base = token_vectors(embedder, tok)
    vectors[: len(base)] = base
    ids = new_tok.convert_tokens_to_ids(words)
    vectors[ids] = word_vectors(embedder, tok, words)
    keep = np.ones(vocab, bool)
    keep[specials] = False
    projected, mean, components, kept = pca_vectors(vectors, keep, args.dim)
    enc = new_tok(texts, truncation=True, max_length=args.max_length)["input_ids"]
    token_counts = np.bincount(np.concatenate([np.asarray(e) for e in enc]), minlength=vocab)[:vocab]
    whole = int(token_counts[ids].sum())
    model = StaticEmbeddingModel(
        torch.from_numpy(projected),
        torch.from_numpy(sif_weights(token_counts, specials)),
        specials,
        normalize=embedder.normalize,
        max_seq_length=embedder.max_seq_length,
    )
    model.teacher_map = (torch.from_numpy(mean), torch.from_numpy(components))
    model.save(out, new_tok)
    subword_tokens = sum(len(e) for e in tok(texts[:2000], truncation=True, max_length=args.max_length)["input_ids"])
    word_tokens = sum(len(e) for e in enc[:2000])
    report = {
        "texts": len(texts),
        "words_added": len(words),
        "vocab": vocab,
        "dim": args.dim,
        "pca_variance_kept": kept,
        "added_word_share_of_tokens": whole / max(1, int(token_counts.sum())),
        "tokens_per_text_first_2000": {"subword": subword_tokens / 2000, "words": word_tokens / 2000},
        "seconds": time.perf_counter() - start,
    }
    (out / "alembert_words.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
