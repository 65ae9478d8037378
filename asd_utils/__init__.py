"""asd_utils: the package under the DCASE Task 2 anomalous sound detection compendium.

Each notebook in ``notebooks/`` is narrative plus calls into this package. Modules:

- ``asd_utils.data``       DCASE layout discovery, file-name parsing, audio loading
- ``asd_utils.synth``      the embedded synthetic DCASE-format dataset
- ``asd_utils.features``   log-mel features (official baseline front end)
- ``asd_utils.metrics``    official evaluator metrics and DCASE result tables
- ``asd_utils.submission`` submission CSVs and the gamma decision threshold
- ``asd_utils.scorers``    kNN / k-means / GMM / Mahalanobis scorers, normalisation, ensembles
- ``asd_utils.backbones``  Kaldi fbank, BEATs, EAT, HF speech models, LoRA, pooling
- ``asd_utils.embeddings`` cached, batched embedding extraction
- ``asd_utils.training``   trainer, schedulers, EMA, mixup, class labels
- ``asd_utils.losses``     AdaCos, sub-cluster AdaCos, ArcFace, sub-center ArcFace
- ``asd_utils.runner``     papermill runner behind ``make reproduce``
"""

__version__ = "0.1.0"
