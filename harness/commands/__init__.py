"""One module per `harness` subcommand: ``HELP``, ``configure(parser)``, ``run(args) -> int``."""
