"""adrl.ais: the AIS state encoder of the `encode` stage (../shared/docs/method.md section 2).

- :mod:`adrl.ais.params`    the `ais` block of params.yaml (imported by adrl.config; keep this package's
                            __init__ free of torch imports)
- :mod:`adrl.ais.data`      input checks and trajectory table -> padded arrays
- :mod:`adrl.ais.model`     the network (input MLP -> GRU/LSTM -> z_t; next-observation decoder)
- :mod:`adrl.ais.train`     ``fit_encoder(df, params) -> FitResult`` (masked Gaussian NLL, early stopping)
- :mod:`adrl.ais.encoder`   ``AisEncoder``: load/save, ``encode_trajectories``, step-by-step ``start``/``step``
- :mod:`adrl.ais.figures`   loss curves and the comparison with the carry-forward baseline
- :mod:`adrl.ais.synthetic` a fake trajectory table in the cohort contract (tests, benchmarks)
"""
