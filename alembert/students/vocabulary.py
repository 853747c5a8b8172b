"""The student's tokenizer: the one of ``student.path`` when given, else the teacher's, whatever
the builder. Known before any builder runs, because the training data is tokenised with it
before a builder that needs data can run."""

from __future__ import annotations

from alembert.errors import AlembertError


def check_same_vocabulary(
    teacher_tok, student_tok, teacher_name: str, student_name: str, cross_tokenizer: str = "off"
) -> bool:
    """True when the vocabularies match; a mismatch is an error unless cross-tokenizer distillation is on."""
    tv, sv = teacher_tok.get_vocab(), student_tok.get_vocab()
    if tv != sv and cross_tokenizer == "off":
        raise AlembertError(
            f"teacher {teacher_name} and student {student_name} have different vocabularies ({len(tv)} vs {len(sv)} "
            "tokens); use a student of the teacher's tokenizer (e.g. --student-layers), or pass --cross-tokenizer "
            "strict (each side tokenises the text itself; token-level losses need piece-for-piece alignment)"
        )
    return tv == sv


def student_tokenizer(spec, teacher_tok, teacher_name: str, cross_tokenizer: str = "off"):
    """The tokenizer the student keeps; another model's must share the teacher's vocabulary
    unless ``cross_tokenizer`` says each side tokenises the text itself."""
    if not spec.path:
        return teacher_tok
    from alembert.models.load import load_tokenizer

    tok = load_tokenizer(spec.path)
    check_same_vocabulary(teacher_tok, tok, teacher_name, spec.path, cross_tokenizer)
    return tok
