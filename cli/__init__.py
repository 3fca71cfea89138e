"""Command-line glue of the ``modality-conflict`` subcommands, one module per subcommand (or pair); the
libraries they call hold no ``argparse`` code."""
