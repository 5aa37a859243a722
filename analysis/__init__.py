"""Results to tables, figures and reports (needs the ``analysis`` extra: pandas, matplotlib).

* :mod:`aigcsim.analysis.load`: run / variants / sweep directories -> tidy dataframes.
* :mod:`aigcsim.analysis.stats`: mean and 95 % confidence intervals over seeds; Jain's index.
* intervals (t, paired t, Wilson, bootstrap) live in :mod:`aigcsim.kernel.stats` (numpy only).
* :mod:`aigcsim.analysis.plots`: figures (PNG + PDF), synthetic data flagged.
* :mod:`aigcsim.analysis.rl_logs`: SB3 monitor / evaluation logs of ``aigcsim train``.
* :mod:`aigcsim.analysis.report`: the self-contained HTML report of ``aigcsim report``.
* :mod:`aigcsim.analysis.repro`: scripts reproducing the seed papers' results on our catalogue.
"""
