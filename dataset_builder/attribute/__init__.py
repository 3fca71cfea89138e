"""Builder of the attribute-recognition conflict set of arXiv 2511.02243: CLEVR-style scenes rendered here.

Questions ask about one object's shape (cube, sphere, cylinder) or material (rubber, metal); a text claims
another value. The set is built by :func:`modality_conflict.dataset_builder.build_dataset` with
``dataset="attribute"`` (``modality-conflict build --dataset attribute``) and shares the colour set's writer,
manifest, folder reader, validation and Hub layout. Modules: ``constants`` (vocabulary, tiers, presets),
``scene`` and ``camera`` (layouts), ``raycast`` and ``render`` (images), ``texts``, ``plan`` (rows),
``features``, ``card``, ``validate`` (row checks) and ``samples`` (one image per visual tier).
"""
