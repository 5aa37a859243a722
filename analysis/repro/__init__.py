"""Scripts that reproduce the project's reported figures (``python -m analysis.repro.NAME``)."""
