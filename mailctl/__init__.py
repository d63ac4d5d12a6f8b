"""``mailctl``: the operator's command line. Tables for people, ``--json`` for scripts.

One module per command group registers its subcommands (``register(sub)``);
:mod:`mailctl.main` builds the parser from them and runs ``args.func(args)``.
"""
