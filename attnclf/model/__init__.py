"""The network and its parts: the classifier, its layers, and the word vectors it starts from.

`classifier` holds `AttentionClassifier` (re-exported here), `layers` its building blocks,
`embeddings` pretrained vectors read from a file, `corpus_vectors` PPMI vectors computed from
the training texts. Everything here needs torch.
"""

from attnclf.model.classifier import AttentionClassifier

__all__ = ["AttentionClassifier"]
