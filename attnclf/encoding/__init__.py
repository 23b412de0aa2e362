"""Texts to model inputs: cleaning (`preprocess`, and choosing it: `preprocess_search`),
tokens (`tokenizer`), class indices (`labels`) and padded batches (`batching`).

Left empty so that importing one part imports no other: all but `batching` are torch-free,
which the onnx backend relies on.
"""
