"""The `edge-lstm` command line: thin typer commands that delegate to the packages below."""
