"""Self-supervised pretraining of the compendium's stand-in backbones.

- :mod:`.beats`: BEATs iteration 1 (frozen random-projection tokenizer, masked patch prediction);
- :mod:`.eat`: EAT (EMA teacher, inverse block masks, CNN decoder, utterance-level CLS loss);
- :mod:`.speech`: wav2vec 2.0 through ``transformers``' ``Wav2Vec2ForPreTraining``;
- :mod:`.corpus`: the corpus (train + supplemental clips of a synthetic root, never test clips);
- :mod:`.run`: train one stand-in and write it in the published checkpoint format;
- :mod:`.evaluate`: frozen-embedding kNN before / after pretraining;
- :mod:`.notebook`: glue for notebook 07; :mod:`.masking`, :mod:`.loop`: shared pieces.

Notebooks do not call this package directly: they ask
:func:`asd_utils.pretrain.standins.standin_checkpoint`, which pretrains on first use.
``python -m asd_utils.pretrain`` runs it alone.
"""
