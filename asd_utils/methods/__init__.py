"""Methods: one module per report, plus the official baseline autoencoder and pseudo-labels.

Glue only: each module joins a front end, a backbone or trainable model, a training recipe and a
scoring back end into the systems its report names. What two reports share lives below.
"""
