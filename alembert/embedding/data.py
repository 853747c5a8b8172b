"""Unlabelled text for embedding distillation: any mix of files, folders, GLUE tasks and SQuAD.

Sentence-level targets need no alignment and no labels, only text the student should learn
to embed as the teacher does. Sources, each a list of strings, deduplicated in order:

- a ``.txt`` file: one text per line;
- a folder: every ``*.txt`` below it, split into sentences (:func:`alembert.data.corpus.split_sentences`);
- a ``.csv``/``.tsv``/``.jsonl`` file: its text column(s), no label needed;
- ``--transfer-task sst2,mrpc,...``: the texts (both sides of pairs) of GLUE training sets;
- ``squad``: the questions and paragraphs of the SQuAD *training* articles only
  (:func:`alembert.data.squad.split_by_article`), so retrieval on the test articles stays unseen.
"""

from __future__ import annotations

from pathlib import Path

from alembert.errors import AlembertError

SQUAD_SOURCE = "squad"


def _txt_lines(path: Path) -> list[str]:
    from alembert.data.corpus import refuse_binary

    refuse_binary(path)
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise AlembertError(f"text file {path} is not UTF-8; convert it (e.g. iconv -f latin1 -t utf-8)") from None


def _folder_sentences(path: Path) -> list[str]:
    from alembert.data.corpus import refuse_binary, split_sentences

    files = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise AlembertError(f"folder {path} holds no .txt files; pass a folder of .txt files or the files themselves")
    out = []
    for f in files:
        refuse_binary(f)
        try:
            out += split_sentences(f.read_text(encoding="utf-8-sig").splitlines())
        except UnicodeDecodeError:
            raise AlembertError(
                f"text file {f} is not UTF-8; convert it (e.g. iconv -f latin1 -t utf-8) or drop it"
            ) from None
    return out


def _table_texts(path: Path, text_column: str | None) -> list[str]:
    from alembert.data.readers import load_data_file

    ds = load_data_file(path, None, text_column=text_column, allow_unlabelled=True)
    return [t for col in ("text_a", "text_b") if col in ds.column_names for t in ds[col] if t]


def _squad_texts() -> list[str]:
    from alembert.data.squad import split_by_article

    train, _ = split_by_article()
    return list(dict.fromkeys(list(train["question"]) + list(train["context"])))


def load_texts(
    sources: list[str],
    transfer_tasks: list[str] | None = None,
    data_dir: str | Path | None = None,
    text_column: str | None = None,
    max_texts: int | None = None,
) -> list[str]:
    """The distinct texts of every source, in order (a text seen twice is kept once)."""
    texts: list[str] = []
    for src in sources:
        if src == SQUAD_SOURCE:
            texts += _squad_texts()
            continue
        path = Path(src).expanduser()
        if path.is_dir():
            texts += _folder_sentences(path)
        elif path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".jsonl", ".json"):
            texts += _table_texts(path, text_column)
        elif path.is_file():
            texts += _txt_lines(path)
        else:
            raise AlembertError(
                f"text source {src} not found; pass .txt/.csv/.tsv/.jsonl files, folders of .txt, or 'squad'"
            )
    from alembert.data.readers import glue_texts

    for task in transfer_tasks or []:
        texts += glue_texts(task, data_dir)
    texts = list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))
    if not texts:
        raise AlembertError(
            f"no text in {', '.join(map(str, [*sources, *(transfer_tasks or [])]))}; "
            "give non-empty files or another source"
        )
    return texts[:max_texts] if max_texts else texts
