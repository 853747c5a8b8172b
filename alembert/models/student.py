"""Build a student: a standard transformers model of the teacher's family.

Two ways, as in the papers:
- :func:`student_from_teacher` keeps chosen teacher layers (DistilBERT and PKD
  initialise the student from every other teacher layer); embeddings, pooler and
  task head are copied.
- :func:`student_from_config` makes a narrower and/or shallower model of the same
  family with random weights (the TinyBERT-4 shape: 4 layers, hidden 312).
"""

from __future__ import annotations

import copy

import torch

from alembert.errors import AlembertError


def every_other_layer(n_teacher: int) -> list[int]:
    """DistilBERT's default: teacher layers 0, 2, 4, ... (0-based), half the depth."""
    return list(range(0, n_teacher, 2))


def layer_list_name(model: torch.nn.Module) -> str:
    """Dotted name of the ModuleList that holds the transformer layers (e.g. ``bert.encoder.layer``)."""
    n = model.config.num_hidden_layers
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n and name.split(".")[-1] in ("layer", "layers"):
            return name
    raise AlembertError(
        f"{type(model).__name__}: cannot find its list of {n} transformer layers; "
        "pass --student-config to build a student from scratch"
    )


def parse_layers(spec: str | list[int]) -> list[int]:
    if isinstance(spec, str):
        try:
            return [int(x) for x in spec.replace(" ", "").split(",") if x != ""]
        except ValueError:
            raise AlembertError(
                f"--student-layers {spec!r}: expected comma-separated teacher layer indices like 0,2,4"
            ) from None
    return list(spec)


def student_from_teacher(teacher, layers: list[int]):
    """A copy of ``teacher`` keeping the 0-based transformer layers ``layers`` in that order."""
    n = teacher.config.num_hidden_layers
    if not layers:
        raise AlembertError("the student needs at least one layer; pass --student-layers like 0,2,4")
    for pos, layer in enumerate(layers):
        if not 0 <= layer < n:
            raise AlembertError(
                f"--student-layers entry {pos} is teacher layer {layer}, "
                f"out of range 0..{n - 1} (the teacher has {n} layers)"
            )
    if len(set(layers)) != len(layers):
        raise AlembertError(f"--student-layers {layers} repeats a layer; give each teacher layer at most once")
    prefix = layer_list_name(teacher) + "."
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = type(teacher)(config)
    source = teacher.state_dict()
    state = {}
    for key in student.state_dict():
        if key.startswith(prefix):
            idx, rest = key[len(prefix) :].split(".", 1)
            key_t = f"{prefix}{layers[int(idx)]}.{rest}"
        else:
            key_t = key
        state[key] = source[key_t].clone()
    student.load_state_dict(state, strict=True)
    return student


def student_from_config(
    teacher,
    num_layers: int,
    hidden_size: int | None = None,
    intermediate_size: int | None = None,
    num_heads: int | None = None,
    seed: int = 0,
):
    """A randomly initialised model of the teacher's family and vocabulary, with a new shape."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = num_layers
    if hidden_size:
        config.hidden_size = hidden_size
    if num_heads:
        config.num_attention_heads = num_heads
    if intermediate_size:
        config.intermediate_size = intermediate_size
    if config.hidden_size % config.num_attention_heads:
        raise AlembertError(
            f"student hidden size {config.hidden_size} is not divisible by {config.num_attention_heads} "
            "attention heads; choose --student-config with hidden_size a multiple of num_heads"
        )
    torch.manual_seed(seed)
    return type(teacher)(config)
