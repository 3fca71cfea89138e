"""Command-line glue of the ``modality-conflict`` subcommands, one module per subcommand (or pair).

Each module exposes ``add_parser(subparsers, name)`` and sets ``func``; the libraries they call hold no
``argparse`` code. :mod:`modality_conflict.cli.main` imports only the module of the subcommand run.
"""
