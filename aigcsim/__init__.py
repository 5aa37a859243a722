"""aigcsim: a discrete-event simulator for multi-user wireless delivery of AI-generated
images as generative-semantic payloads.

Packages, from the bottom floor up (each imports only those below it):
:mod:`aigcsim.kernel`, :mod:`aigcsim.models`, :mod:`aigcsim.sim`,
:mod:`aigcsim.agents`, :mod:`aigcsim.analysis`, :mod:`aigcsim.cli`.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("aigcsim")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
