"""Data shipped with aigcsim.models: the default operating-point cache and the image
catalogue (read with ``importlib.resources``)."""
