"""Results to tables, figures and reports (needs the ``analysis`` extra: pandas, matplotlib).

* :mod:`analysis.load`: run / variants / sweep directories -> tidy dataframes.
* :mod:`analysis.stats`: mean and 95 % t confidence intervals over seeds; Jain's index.
* :mod:`analysis.plots`: figures (PNG + PDF), synthetic data flagged.
* :mod:`analysis.rl_logs`: SB3 monitor / evaluation logs of ``aigcsim train``.
* :mod:`analysis.report`: the self-contained HTML report of ``aigcsim report``.
* :mod:`analysis.repro`: scripts reproducing the seed papers' results on our catalogue.
"""
