"""What machine a figure was measured on: the CPU model, the instruction sets that decide int8 and
fp32 speed, core and thread counts, and the library versions.

The same export runs 1.2x or 3x faster than its peers depending on these: onnxruntime's int8
MatMul uses VNNI (one instruction per u8 x s8 dot product) where the CPU has it, AMX tiles on
recent Xeons, and on AVX2-only CPUs (many AMD EPYC) pairs of products added in int16, which
saturates with full-range weights. So every bench output and export record says which of
these the CPU had; nothing here is assumed, all is read from the running machine
(``/proc/cpuinfo`` flags on Linux, torch's own dispatch level elsewhere).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# /proc/cpuinfo flag -> the name a reader knows, in the order they matter for inference
ISA_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX512-VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX512-BF16",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
}


def _cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str | None, set[str]]:
    """(model name, flags) of the first processor in ``path``; (None, empty) where it is absent."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None, set()
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        if model and flags:
            break
    return model, flags


def cpu_facts(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The CPU and runtime facts a speed figure depends on (JSON-ready)."""
    import torch

    model, flags = _cpuinfo(cpuinfo)
    try:
        capability = torch.backends.cpu.get_cpu_capability()  # the kernels torch dispatches to (AVX2, AVX512, ...)
    except Exception:  # older torch or a non-x86 build
        capability = None
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "isa": [name for flag, name in ISA_FLAGS.items() if flag in flags],
        "torch_cpu_capability": capability,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": ort,
    }


def has_int8_dot(facts: dict) -> bool:
    """True where the CPU has an int8 dot-product instruction (VNNI or AMX): no int16 saturation."""
    return any(i in facts.get("isa", []) for i in ("AVX512-VNNI", "AVX-VNNI", "AMX-INT8"))


def has_bf16(facts: dict) -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX): a bf16 model is then faster, not emulated."""
    return any(i in facts.get("isa", []) for i in ("AVX512-BF16", "AMX-BF16"))


def cpu_line(facts: dict) -> str:
    """One line for a footer: model, instruction sets, CPUs, versions."""
    isa = ", ".join(facts.get("isa") or []) or "none of AVX2/AVX-512/VNNI/AMX detected"
    return (
        f"CPU {facts.get('cpu_model')} ({isa}; torch kernels {facts.get('torch_cpu_capability') or '?'}); "
        f"{facts.get('usable_cpus')} of {facts.get('logical_cpus')} logical CPUs usable; "
        f"torch {facts.get('torch')}, onnxruntime {facts.get('onnxruntime')}"
    )


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """torch's CPU threads set to ``threads`` (None: left as they are) inside the block and restored after it, so
    that what is timed inside runs on the threads a figure will name, and a caller's own setting survives."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield threads or before
    finally:
        torch.set_num_threads(before)


def busy(load: float | None, cores: int | None) -> str:
    """``"busy (load 4.5 on 2 cores)"`` when other work competed for the CPU (a 1-minute load average above
    its logical CPUs), else ``""``: every timing says so, because contention slows runtimes unequally."""
    if not cores or load is None or load <= cores:
        return ""
    return f"busy (load {load:.1f} on {cores} cores)"
