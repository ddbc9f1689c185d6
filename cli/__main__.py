"""`python -m reenact_cli ...`: the `reenact` command, as `torchrun -m reenact_cli ...` launches it."""

from reenact_cli.main import entry

entry()
