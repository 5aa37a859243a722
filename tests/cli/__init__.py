"""Tests of the ``aigcsim`` command line (mirrors aigcsim/cli)."""
