"""README.md of a classifier export (ONNX, or the OpenVINO IR ``--quantize auto`` chose): what the
graph is, how it was chosen, and on what CPU.

A speed claim about an int8 graph means little without the machine: the same file is 1.2x or
3x faster than a plain export depending on VNNI/AMX (alembert/machine.py). So the card
says which variant is inside, why (``--quantize auto``'s one-line reason and each candidate's
figures), and the CPU model, instruction sets and library versions it was exported and measured on.
"""

from __future__ import annotations

from pathlib import Path

from alembert.files import write_text_atomic
from alembert.machine import cpu_line


def write_export_card(folder: Path, info: dict) -> Path:
    """Write ``folder/README.md`` from the export record ``info`` (alembert_export.json)."""
    from alembert.runtimes import get_runtime

    auto = info.get("auto")
    runtime = get_runtime(info.get("format", "onnx"))
    computed = f", computed in {info['precision']}" if info.get("precision") else ""
    lines = [
        "---",
        f"library_name: {runtime.library}",
        "pipeline_tag: text-classification",
        f"tags: [alembert, {info.get('format', 'onnx')}"
        + (", int8" if info.get("quantization") == "int8" else "")
        + "]",
        "---",
        f"# {runtime.title} export of `{Path(info['source']).name}`",
        "",
        f"Exported by `alembert export` from `{info['source']}`: `{runtime.weights[0]}` (from an opset "
        f"{info['opset']} ONNX graph; {info.get('variant') or info.get('quantization') or 'fp32'}{computed}), inputs "
        f"{', '.join(info['inputs'])}, output `logits`; "
        f'run it with `alembert predict THIS_FOLDER "some text"` or any {runtime.library} session.',
        "",
        f"- Graph: {info.get('int8') or 'fp32'}; attention {info['attention']}; last layer: {info['last_layer']}.",
        f"- Check vs PyTorch on {info['check_sentences']} sentences: "
        f"max |logit diff| {info['max_abs_diff_vs_torch']:.2e}, argmax agreement {info['argmax_agreement']:.0%}.",
    ]
    if auto:
        lines += [
            f"- `--quantize auto` on {auto['measured_on']}: {auto['reason']}.",
            "",
            f"| candidate | dev {auto['metric']} | seq/s @32 | ms @1 | verdict |",
            "|---|---:|---:|---:|---|",
        ]
        for name, c in auto["candidates"].items():
            dev = f"{c['dev']:.4f}" if "dev" in c else "n/a"
            speed = (f"{c['seq_s_b32']:.1f}", f"{c['ms_b1']:.2f}") if "seq_s_b32" in c else ("n/a", "n/a")
            verdict = "chosen" if name == auto["variant"] else c.get("refused", "slower")
            lines.append(f"| {name} | {dev} | {speed[0]} | {speed[1]} | {verdict} |")
        lines += [
            "",
            f"PyTorch source: dev {auto['metric']} {auto['source_dev']:.4f}; "
            f"timed: {auto['timed']}, {auto['threads']} thread(s).",
        ]
    lines += ["", f"Exported on: {cpu_line(info['machine'])}.", ""]
    path = folder / "README.md"
    write_text_atomic(path, "\n".join(lines))
    return path
