"""alembert: distil BERT-family encoders into smaller, faster students."""

__version__ = "0.1.0"
