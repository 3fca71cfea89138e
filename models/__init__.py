"""The model side: the lmms-eval wrappers, their logit lens and the demo model.

Importing it is cheap: torch and transformers load with the modules that need them; ``envelope`` (the
response format the task decodes) needs neither.
"""
