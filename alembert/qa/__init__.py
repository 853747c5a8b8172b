"""Extractive question answering (SQuAD v1.1): data, windowed features, span
post-processing and the official EM/F1 metric."""
