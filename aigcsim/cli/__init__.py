"""The ``aigcsim`` command (typer): the top floor; it may import every other package."""
