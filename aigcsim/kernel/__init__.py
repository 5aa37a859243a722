"""The bottom floor, imported by every other package: user-input errors, registries with
"did you mean" suggestions, provenance (package versions, git commit) and Ray helpers.
It imports nothing else of aigcsim."""
