"""The demo model: a small LLaVA that reads colours from images and from texts, trained from scratch on CPU.

Training sees only vision-only questions (a rendered image and "What color is the {shape}?"), text-only
questions for every text tier (the world objects' colours are learnt from these texts) and agreeing
multimodal questions, never an image paired with a text that contradicts it: conflict behaviour is left
to emerge. Difficulty comes from the data, as for large models: small, crowded and occluded targets are
hard to see, world objects are seen with very different frequencies, and indirect texts in training carry
distractor sentences about other objects.

One job per module, in the order training uses them: ``vocabulary`` (tokenizer, chat template,
processor), ``recipe`` (the checked training settings and the model config), ``images`` and ``texts``
(training data), ``training`` (the loop), ``checkpoint`` (the folder: Hub layout, recipe file, checks,
atomic writing), ``cache`` (``demo --retrain``'s checked, locked cache). ``modality-conflict
train-demo-model --out DIR --seed N`` runs :func:`checkpoint.train_checkpoint_folder`; the package ships
the seed-0 result (:func:`checkpoint.shipped_checkpoint`), which that command reproduces byte for byte.
"""
