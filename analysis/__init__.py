"""What runs after an lmms-eval run, reading the files it wrote: results view, reports, probe, submissions."""
