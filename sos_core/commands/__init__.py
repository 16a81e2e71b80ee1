"""One module per `sos` subcommand, each exposing `register(subparsers)`."""
