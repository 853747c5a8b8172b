"""Raw-text corpora for general (task-agnostic) distillation.

:func:`load_corpus` reads .txt files (one row per line, through ``datasets``'
``text`` loader: a memory-mapped Arrow cache, or a stream for very large corpora)
or a dataset saved with ``save_to_disk`` that has a ``text`` column.

:func:`pack_sentences` turns the lines into training sequences: it splits the
text into sentences (:func:`split_sentences`), tokenises them without special
tokens and greedily packs whole consecutive sentences into sequences of at most
``max_length`` tokens with the tokenizer's special tokens (``[CLS] ... [SEP]``).
No next-sentence pairs: ``token_type_ids`` are all 0. Sequences stay unpadded
(padding is dynamic, per batch; masking is dynamic too, see
:mod:`alembert.data.masking`).
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from alembert.data.readers import glue_texts
from alembert.data.squad import squad_paragraphs
from alembert.data.tokenize import cache_write_note, tokenizer_fingerprint
from alembert.errors import AlembertError, brief
from alembert.models.packaged import cache_dir

PACK_VERSION = 1  # bump when the splitting or packing changes: part of the cache key
BATCH_LINES = 2000  # lines per map batch; sentences and sequences never span two batches

SQUAD = "squad"  # a corpus source: the paragraphs of the SQuAD training articles
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

# A sentence ends at . ! ? (repeated), then optional closing quotes/brackets, when
# whitespace and a capital letter (optionally after opening quotes/brackets) follow.
# Not after the common titles (Mr. Mrs. Ms. Dr. St. Jr. Sr.) or a single capital
# initial ("J. Smith"). Deliberately simple: a wrong split only moves a packing boundary.
_SENTENCE_END = re.compile(
    r"[.!?]+"
    r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bJr\.)(?<!\bSr\.)(?<!\b[A-Z]\.)"
    r"[\"'\u201d\u2019)\]]*"
    r"(?=\s+[\"'\u201c\u2018(\[]*[A-Z])"
)


# ------------------------------------------------------------------ loading


def load_corpus(
    paths: list[str | Path] | str | Path, transfer_tasks: list[str] | None = None, data_dir: str | Path | None = None
):
    """A ``datasets.Dataset`` with a ``text`` column.

    ``paths``: one or many .txt files or folders (all ``*.txt`` below them, sorted),
    read in the order given, one row per line; or one folder saved with
    ``save_to_disk`` (its ``train`` split if it is a DatasetDict); or one Hub
    dataset name (needs network). Files are read as UTF-8 (a BOM is dropped).
    ``squad`` among them adds the paragraphs of the SQuAD *training* articles
    (:func:`~alembert.data.squad.squad_paragraphs`: the held-out articles stay unseen), and
    ``transfer_tasks`` the texts of those GLUE training sets (both sides of a pair), one row each.
    """
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    texts = squad_paragraphs("train") if SQUAD in map(str, items) else []
    texts += [t for task in transfer_tasks or [] for t in glue_texts(task, data_dir)]
    items = [i for i in items if str(i) != SQUAD]
    if not items and not texts:
        raise AlembertError(
            "no corpus given; pass .txt files, folders of .txt files, squad or a dataset saved with save_to_disk"
        )
    parts = [_load_files(items).select_columns(["text"])] if items else []
    if texts:
        parts.append(datasets.Dataset.from_dict({"text": texts}))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _load_files(items: list):
    files: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir() and _is_saved_dataset(path):
            if len(items) > 1:
                raise AlembertError(f"corpus {item} is a saved dataset: pass it alone, not mixed with other paths")
            return _load_saved(path)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise AlembertError(
                    f"corpus folder {item} holds no .txt files; "
                    "pass a folder of .txt files, the files themselves or a saved dataset"
                )
            files += found
        elif path.is_file():
            files.append(path)
        elif (
            len(items) == 1
            and not str(item).startswith((".", "/", "~"))
            and not path.suffix
            and _HUB_NAME.match(str(item))
        ):
            return _load_hub(str(item))
        else:
            raise AlembertError(
                f"corpus path {item} not found; pass existing .txt files, folders of .txt files or a saved dataset"
            )
    nonempty = [f.resolve() for f in files if f.stat().st_size > 0]
    for f in nonempty:
        refuse_binary(f)
    if not nonempty:
        raise AlembertError(f"corpus is empty: {', '.join(map(str, items))} hold(s) no text; pass non-empty .txt files")
    try:
        return datasets.load_dataset(
            "text",
            data_files=[str(f) for f in nonempty],
            split="train",
            encoding="utf-8-sig",
            cache_dir=str(cache_dir() / "datasets"),
        )
    except Exception as e:  # datasets wraps the reader's error in a DatasetGenerationError
        cause = e.__cause__ or e
        bad = _find_undecodable(nonempty) if isinstance(cause, UnicodeDecodeError) else None
        if bad:
            raise AlembertError(
                f"corpus file {bad[0]} is not UTF-8 text (undecodable byte at offset {bad[1]}); "
                "convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8) or drop it"
            ) from None
        reason = brief(cause, 200)
        raise AlembertError(
            f"could not read the corpus ({type(cause).__name__}: {reason}); check the files are plain UTF-8 text"
        ) from None


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def _load_saved(path: Path):
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise AlembertError(
                f"saved dataset {path} has no 'train' split (splits: {', '.join(ds)}); save the split you want alone"
            )
        ds = ds["train"]
    return _checked(ds, str(path))


def _load_hub(name: str):
    try:
        ds = datasets.load_dataset(name, split="train")
    except Exception as e:  # offline, unknown name: the same answer for the user
        raise AlembertError(
            f"corpus {name!r} is not a local path and could not be loaded as a hub dataset ({type(e).__name__}); "
            "pass local .txt files or a dataset saved with save_to_disk"
        ) from None
    return _checked(ds, name)


def _checked(ds, name: str):
    if ds.column_names is not None and "text" not in ds.column_names:
        raise AlembertError(
            f"dataset {name} has no 'text' column (columns: {', '.join(ds.column_names)}); "
            "rename the text column to 'text'"
        )
    if isinstance(ds, datasets.Dataset):
        if len(ds) == 0:
            raise AlembertError(f"corpus is empty: dataset {name} has no rows")
        ds = ds.select_columns(["text"])
        return ds
    return ds


def refuse_binary(path: Path) -> None:
    """A NUL byte in the first MiB is no text (UTF-8 text never holds one): a binary file or a disk
    image passed by mistake would otherwise pack into "0 of 0 tokens" or fail deep in datasets."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    if b"\x00" in head:
        raise AlembertError(
            f"corpus file {path} holds NUL bytes (at offset {head.index(0)}): it is binary, not text; "
            "pass UTF-8 .txt files"
        )


def _find_undecodable(files: list[Path]) -> tuple[Path, int] | None:
    """The first file that is not valid UTF-8 and the byte offset of the bad byte."""
    for f in files:
        offset, pending = 0, b""  # pending: the bytes of a character cut by the chunk end
        with open(f, "rb") as fh:
            while True:
                chunk = fh.read(1 << 20)
                data = pending + chunk
                try:
                    data.decode("utf-8")
                    offset, pending = offset + len(data), b""
                except UnicodeDecodeError as e:
                    if not chunk or e.reason != "unexpected end of data":
                        return f, offset + e.start
                    offset, pending = offset + e.start, data[e.start :]
                if not chunk:
                    break
    return None


# ------------------------------------------------------------------ sentences and packing


def split_sentences(lines: list[str]) -> list[str]:
    """Sentences of ``lines`` (rows of a text corpus), in order.

    Consecutive non-blank lines are joined with a space (a printed line that ends
    mid-sentence continues on the next one); blank lines end a paragraph. Within a
    paragraph the text is split at :data:`_SENTENCE_END`. A heading without final
    punctuation joins the sentence that follows it.
    """
    sentences, paragraph = [], []
    for line in [*lines, ""]:
        line = line.strip()
        if line:
            paragraph.append(line)
            continue
        if paragraph:
            text = _SENTENCE_END.sub("\\g<0>\n", " ".join(paragraph))
            sentences += [s.strip() for s in text.split("\n") if s.strip()]
            paragraph = []
    return sentences


def pack_token_lists(sentences: list[list[int]], budget: int) -> list[list[int]]:
    """Greedily pack consecutive token lists into sequences of at most ``budget`` tokens.

    A sentence goes into the current sequence when it fits, else it starts a new one.
    A sentence longer than ``budget`` is cut into ``budget``-sized chunks; its last,
    shorter chunk starts the next sequence. The concatenation of the output equals
    the concatenation of the input.
    """
    out, current = [], []
    for ids in sentences:
        if not ids:
            continue
        if len(current) + len(ids) <= budget:
            current = current + ids
            continue
        if current:
            out.append(current)
        while len(ids) > budget:
            out.append(ids[:budget])
            ids = ids[budget:]
        current = list(ids)
    if current:
        out.append(current)
    return out


def special_wrapping(tokenizer) -> tuple[list[int], list[int]]:
    """(prefix, suffix) special ids of a single sequence: ``([CLS], [SEP])``, ``(<s>, </s>)``.

    From ``build_inputs_with_special_tokens`` where the tokenizer has it (Python
    tokenizers); transformers 5 fast tokenizers do not, so there it is read off the
    tokenizer's own encoding of a probe word, with and without special tokens.
    """
    if hasattr(tokenizer, "build_inputs_with_special_tokens"):
        probe = [-1]
        full = tokenizer.build_inputs_with_special_tokens(probe)
    else:
        probe = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a")["input_ids"]
    for i in range(len(full) - len(probe) + 1):
        if full[i : i + len(probe)] == probe:
            return list(full[:i]), list(full[i + len(probe) :])
    raise AlembertError(
        f"cannot tell where {type(tokenizer).__name__} puts its special tokens; use a BERT/RoBERTa-style tokenizer"
    )


def pack_sentences(ds, tokenizer, max_length: int = 128, cache: Path | None = None):
    """Pack the ``text`` rows of ``ds`` into sequences of whole sentences (see module doc).

    Returns columns ``input_ids`` (int32), ``attention_mask`` (all ones, int8),
    ``token_type_ids`` (all zeros, when the tokenizer uses them) and ``length``.
    Lines are processed in batches of :data:`BATCH_LINES`; sentences and sequences
    do not cross a batch (so at most one short sequence per batch). Files follow each
    other without a break: the last sentence of one file may share a sequence with
    the first of the next. A ``Dataset`` is cached under
    ``<cache>/packed/<tokenizer>-<max_length>-<corpus fingerprint>.arrow``
    (the text loader's fingerprint follows the files' paths, sizes and mtimes).
    """
    prefix, suffix = special_wrapping(tokenizer)
    n_special = len(prefix) + len(suffix)
    budget = max_length - n_special
    if budget < 1:
        raise AlembertError(
            f"max_length {max_length} leaves no room for text beside {n_special} special tokens; "
            "use a larger max_length"
        )
    with_types = "token_type_ids" in tokenizer.model_input_names
    columns = {
        "input_ids": datasets.List(datasets.Value("int32")),
        "attention_mask": datasets.List(datasets.Value("int8")),
    }
    if with_types:
        columns["token_type_ids"] = datasets.List(datasets.Value("int8"))
    features = datasets.Features({**columns, "length": datasets.Value("int32")})

    def pack(batch):
        sentences = split_sentences(batch["text"])
        ids = (
            tokenizer(
                sentences,
                add_special_tokens=False,
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,
            )["input_ids"]
            if sentences
            else []
        )
        seqs = [prefix + s + suffix for s in pack_token_lists(ids, budget)]
        out = {"input_ids": seqs, "attention_mask": [[1] * len(s) for s in seqs]}
        if with_types:
            out["token_type_ids"] = [[0] * len(s) for s in seqs]
        out["length"] = [len(s) for s in seqs]
        return out

    if "text" not in ds.column_names:
        raise AlembertError(
            f"corpus has no 'text' column (columns: {', '.join(ds.column_names)}); load it with load_corpus"
        )
    key = f"{tokenizer_fingerprint(tokenizer)}-{max_length}-{ds._fingerprint}-v{PACK_VERSION}"
    folder = Path(cache or cache_dir()) / "packed"
    folder.mkdir(parents=True, exist_ok=True)
    with cache_write_note(folder / f"{key}.arrow", "packed sentences"):
        packed = ds.map(
            pack,
            batched=True,
            batch_size=BATCH_LINES,
            remove_columns=ds.column_names,
            features=features,
            cache_file_name=str(folder / f"{key}.arrow"),
            load_from_cache_file=True,
            new_fingerprint=key,
            desc="packing sentences",
        )
    if len(packed) == 0:
        raise AlembertError("corpus holds no text (only blank lines); pass files with text")
    return packed


def packed_corpus(data, tokenizer):
    """(held-out sequences, training sequences) of a raw-text config ``data`` (``corpus``,
    ``transfer_tasks``, ``max_length``, ``max_sequences``, ``heldout``): the first ``heldout`` packed
    sequences are never trained on."""
    packed = pack_sentences(load_corpus(data.corpus, data.transfer_tasks), tokenizer, data.max_length)
    if data.max_sequences:
        packed = packed.select(range(min(data.max_sequences, len(packed))))
    if len(packed) <= data.heldout:
        raise AlembertError(
            f"the corpus packs into only {len(packed)} sequences, not more than --heldout {data.heldout}; "
            "give more text or a smaller --heldout"
        )
    return packed.select(range(data.heldout)), packed.select(range(data.heldout, len(packed)))
