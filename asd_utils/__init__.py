"""asd_utils: the package under the DCASE Task 2 anomalous sound detection compendium.

Each notebook in ``notebooks/`` is narrative plus calls into this package. The package is a house
of layers (:data:`LAYERS`, lowest first): a module may import its own folder and the folders of
lower layers, never a higher one (``tests/test_architecture.py`` checks every import). At the top
level live only three small shared utilities: :mod:`.config` (profile configs), :mod:`.paths`
(generated folders) and :mod:`.device` (CPU/GPU choice).
"""

__version__ = "0.1.0"

#: The layers of the package, lowest first; each entry lists the folders of one layer, which may
#: import each other only without a circle. The one-paragraph ``__init__`` docstring of each folder
#: says what it holds.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config", "paths", "device"),   # shared utilities (top-level modules)
    ("storage",),                    # atomic files, locks, cache keys, the one cache helper
    ("data", "signal"),              # read DCASE roots; signal analysis with no network
    ("features",),                   # log-mel, Kaldi fbank, the noise-aware front end
    ("scoring", "evaluation"),       # kNN engine, k-means/GMM/Mahalanobis, ensembles; metrics, results
    ("synth",),                      # the embedded synthetic dataset, its realism report, AUC per fault
    ("training",),                   # model-agnostic: trainer, losses, augmentations, schedules, EMA, DDP
    ("backbones", "models"),         # pretrained encoders behind one interface; trainable nets
    ("pretrain",),                   # the compendium's pretrained stand-ins
    ("methods",),                    # one module per report, the baseline autoencoder, pseudo-labels
    ("notebook",),                   # what a notebook calls: run context, tour, explorer, plots
    ("run",),                        # the papermill runner, kernel client and watchdog
)
