"""The model side: the ``modality_conflict_hf`` lmms-eval wrapper, its logit lens and the demo model.

Importing this package is cheap; torch and transformers load with the modules that need them
(:mod:`~modality_conflict.models.hf_model`, :mod:`~modality_conflict.models.logit_lens`).
:mod:`~modality_conflict.models.envelope` (the response format the task decodes) needs neither. The tiny
random-weight checkpoints the tests use are built by ``tests/tiny_zoo``, which does not ship.
"""
