"""Pretraining of the built-in ``tiny`` base model, the code that made its shipped weights.

The runtime needs only the weights (``loraforge.adapters.ml.tiny.WEIGHTS_DIR``); this package
draws the procedural pictures, learns the tokenizer, builds the components from configs,
pretrains them and measures the result. Run it with ``python -m tools.tiny --help`` from the
repository root, with the ``ml`` extra installed.
"""
