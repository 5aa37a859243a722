"""A small DeepJSCC baseline (Bourtsoulatze et al. 2019 style), trained here on CPU.

* :mod:`~aigcsim.models.deepjscc.network`: the CNN autoencoder, pixels -> complex channel
  symbols with an average power constraint -> AWGN -> pixels.
* :mod:`~aigcsim.models.deepjscc.train`: the training script (seeded; crops of the
  shipped photographs, a held-out set) that wrote the shipped weights.
* ``deepjscc-snr*.safetensors`` + ``.json``: the shipped weights and their config.
"""
