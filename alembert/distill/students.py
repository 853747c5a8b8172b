"""Make the student a recipe trains, as the config says, and check it fits the teacher."""

from __future__ import annotations

from alembert.config.schema import StudentConfig
from alembert.data.tasks import TaskSpec
from alembert.errors import AlembertError
from alembert.models.load import load_classifier, load_tokenizer
from alembert.models.student import every_other_layer, student_from_config, student_from_teacher


def check_same_vocabulary(teacher_tok, student_tok, teacher_name: str, student_name: str) -> None:
    tv, sv = teacher_tok.get_vocab(), student_tok.get_vocab()
    if tv != sv:
        raise AlembertError(
            f"teacher {teacher_name} and student {student_name} have different vocabularies ({len(tv)} vs {len(sv)} tokens); "
            "use a student of the teacher's tokenizer (e.g. --student-layers) or a teacher with the student's vocabulary"
        )


def make_student(cfg: StudentConfig, teacher, teacher_tok, teacher_name: str, task: TaskSpec, attn: str, seed: int):
    """(student model, description) for a task; the student is a standard transformers model."""
    if cfg.path:
        check_same_vocabulary(teacher_tok, load_tokenizer(cfg.path), teacher_name, cfg.path)
        return load_classifier(cfg.path, task, attn=attn), f"checkpoint {cfg.path}"
    if cfg.from_config:
        student = student_from_config(
            teacher, cfg.num_layers or teacher.config.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, seed=seed
        )
        c = student.config
        return student, f"random init: {c.num_hidden_layers} layers, hidden {c.hidden_size}, FFN {c.intermediate_size}, {c.num_attention_heads} heads"
    layers = cfg.layers if cfg.layers is not None else every_other_layer(teacher.config.num_hidden_layers)
    return student_from_teacher(teacher, layers), f"teacher layers {','.join(map(str, layers))} (0-based) of {teacher_name}"
