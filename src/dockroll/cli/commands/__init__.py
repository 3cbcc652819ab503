"""One module per command group; each registers itself on the Typer app."""
