"""The demo model: a small LLaVA that reads colours from images and from texts, trained from scratch on CPU.

Training never pairs an image with a text that contradicts it: conflict behaviour is left to emerge.
Difficulty comes from the data, as for large models: small, crowded and occluded targets, world objects
seen with very different frequencies, distractor sentences in indirect texts. Modules, in the order
training uses them: ``vocabulary``, ``recipe``, ``images``, ``texts``, ``training``, ``checkpoint`` and
``cache`` (``demo --retrain``'s). The package ships the seed-0 result of ``modality-conflict
train-demo-model`` (:func:`checkpoint.shipped_checkpoint`), which that command reproduces byte for byte.
"""
