"""Why the model answered: each token's influence (`influence`) and how faithful token scores
are to the model (`faithfulness`, ERASER's comprehensiveness and sufficiency)."""
