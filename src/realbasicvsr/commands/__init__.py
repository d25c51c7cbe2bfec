"""One module per CLI command; see `realbasicvsr.cli.COMMANDS`."""
