"""Masked-LM adaptation (``alembert adapt-mlm``): an encoder shipped without its masked-LM head
(a sentence-transformers model) gets a head tied to its input embeddings, trained first alone and
then with the whole encoder on raw text, so that DistilBERT's triple loss has a real teacher.

:mod:`~alembert.mlm.model` loads the model and finds its head, :mod:`~alembert.mlm.module` is the
training module (the loss at the masked positions only), :mod:`~alembert.mlm.metrics` the held-out
scores (masked-token top-k accuracy, pseudo-perplexity), :mod:`~alembert.mlm.adapt` the run.
"""
