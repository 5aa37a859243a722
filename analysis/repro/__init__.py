"""Scripts that reproduce the project's reported figures
(``python -m aigcsim.analysis.repro.NAME``)."""
