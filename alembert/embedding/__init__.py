"""Sentence-embedding models: read, run, distil, evaluate and save them as sentence-transformers folders."""
