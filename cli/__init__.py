"""The `reenact` command line (installed as the `reenact_cli` package)."""
