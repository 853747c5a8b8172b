"""Make the student a recipe trains, as the config says, and check it fits the teacher."""

from __future__ import annotations

from alembert.config.schema import StudentConfig
from alembert.data.glue import TaskSpec
from alembert.errors import AlembertError
from alembert.models.load import load_classifier, load_tokenizer
from alembert.models.student import every_other_layer, student_from_config, student_from_teacher


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


def make_student(
    cfg: StudentConfig,
    teacher,
    teacher_tok,
    teacher_name: str,
    task: TaskSpec,
    attn: str,
    seed: int,
    cross_tokenizer: str = "off",
):
    """(student model, description) for a task; the student is a standard transformers model.

    ``path`` with ``layers`` keeps those layers of another model (e.g. a 3-layer slice of
    MiniLM for an MPNet teacher, with ``cross_tokenizer``)."""
    if cfg.path:
        check_same_vocabulary(teacher_tok, load_tokenizer(cfg.path), teacher_name, cfg.path, cross_tokenizer)
        model = load_classifier(cfg.path, task, attn=attn)
        if cfg.layers is not None:
            return student_from_teacher(
                model, cfg.layers
            ), f"layers {','.join(map(str, cfg.layers))} (0-based) of {cfg.path}"
        return model, f"checkpoint {cfg.path}"
    if cfg.from_config:
        student = student_from_config(
            teacher,
            cfg.num_layers or teacher.config.num_hidden_layers,
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.num_heads,
            seed=seed,
        )
        c = student.config
        return (
            student,
            f"random init: {c.num_hidden_layers} layers, hidden {c.hidden_size}, "
            f"FFN {c.intermediate_size}, {c.num_attention_heads} heads",
        )
    layers = cfg.layers if cfg.layers is not None else every_other_layer(teacher.config.num_hidden_layers)
    return student_from_teacher(
        teacher, layers
    ), f"teacher layers {','.join(map(str, layers))} (0-based) of {teacher_name}"
