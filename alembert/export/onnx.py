"""``alembert export --onnx``'s front door: check the output, then hand the model to its export.

A fine-tuned classifier goes to :mod:`alembert.export.classifier` (one graph, ``logits``); a
static model (a model2vec folder: token vectors, no layers) to :mod:`alembert.export.static`; a
sentence-transformers folder (``modules.json``, no classification head) to
:mod:`alembert.export.embedding` (one graph, pooling and head inside). A static folder is asked
first: it is also a sentence-transformers folder (``modules.json`` with a ``StaticEmbedding``
module), one the embedding export cannot read. Both are built with the
graph toolkit (:mod:`alembert.export.graph`) in a staged folder (:mod:`alembert.export.staging`),
and the folder records ``format: onnx``, which :mod:`alembert.runtimes` reads to run it.
"""

from __future__ import annotations

from pathlib import Path

from alembert.errors import AlembertError
from alembert.export.classifier import export_classifier_onnx
from alembert.export.embedding import export_embedding_onnx, is_embedding_dir
from alembert.export.staging import check_output
from alembert.export.static import export_static_onnx

QUANTIZATIONS = (None, "int8", "auto")  # auto: measured on this machine (alembert/export/auto.py)


def export_onnx(
    model_dir: str | Path,
    out_dir: str | Path,
    quantize: str | None = None,
    opset: int | None = None,
    overwrite: bool = False,
    first_token: bool = True,
    data: dict | None = None,
    candidates: list[str] | None = None,
    batch_invariant: bool = False,
) -> Path:
    """Export ``model_dir`` (a fine-tuned classifier) to ``out_dir``; returns ``out_dir``.

    ``quantize``: None (fp32), ``"int8"`` (dynamic) or ``"auto"``: each variant of
    :data:`alembert.export.auto.VARIANTS` (or ``candidates``) is built, timed on this machine and
    scored on the dev set of ``data`` (DataConfig fields; default: the task saved with the model),
    and the fastest that keeps the dev metric within 0.01 of the PyTorch model's is kept (an OpenVINO
    candidate's win makes the folder an OpenVINO one; ``batch_invariant``: only variants whose outputs
    do not depend on the batch).

    ``first_token``: BERT classifiers compute their last layer for the [CLS] token only
    (what the pooler reads; :mod:`alembert.export.first_token`); the logits are unchanged.
    A sentence-transformers folder (``modules.json``, no classification head) is exported as
    one sentence-embedding graph instead (:mod:`alembert.export.embedding`), a static (model2vec)
    folder as its weighted-mean graph (:mod:`alembert.export.static`).

    Built in a temporary folder (a hidden sibling of a new ``out_dir``, or inside an existing
    one) and moved into place; a new ``out_dir`` appears complete at once. A non-empty ``out_dir``
    needs ``overwrite=True``, and then only the export's own files (``EXPORT_OWNED``) are
    replaced: the rest of the folder, a source model inside it included, is never touched.
    """
    from alembert.models.resolve import resolve_model
    from alembert.models.static import is_static_folder
    from alembert.runtimes import runtime_for
    from alembert.runtimes.base import PYTORCH_FORMAT

    if quantize not in QUANTIZATIONS:
        raise AlembertError(f"unknown quantisation {quantize!r}; use auto, int8 or none")
    out_dir = Path(out_dir).absolute()  # "." has a parent and a name
    check_output(out_dir, None, overwrite)
    src = resolve_model(model_dir)
    check_output(out_dir, src, overwrite)
    runtime = runtime_for(src)
    if runtime.format != PYTORCH_FORMAT:
        raise AlembertError(
            f"model {model_dir} is already an {runtime.title or runtime.format} export; "
            "pass the PyTorch folder it came from"
        )
    static = is_static_folder(src)
    if static:
        if quantize == "auto":
            raise AlembertError(
                f"model {model_dir} is a static model (a token table, no layers: nothing for int8 to speed up); "
                "pass --quantize int8 (a 4x smaller table) or none"
            )
        return export_static_onnx(src, out_dir, quantize, opset, overwrite)
    if is_embedding_dir(src):
        return export_embedding_onnx(
            src, out_dir, quantize, opset, first_token, overwrite, data, candidates, batch_invariant
        )
    return export_classifier_onnx(
        src, out_dir, quantize, opset, overwrite, first_token, data, candidates, batch_invariant
    )
