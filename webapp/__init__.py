"""The museum site and the `alexnet-archive` command. Kept free of imports so that `webapp.cli` loads nothing heavy."""
