"""Charts written as PNG files: the matplotlib set-up (backend.py) and the training curves of the
``plot`` command (curves.py); the bench command's own plots live in ``alembert.measure.report``."""
