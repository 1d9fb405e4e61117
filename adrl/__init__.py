"""adrl: offline clinical RL for sepsis (MIMIC-III -> Sepsis-3 -> AIS -> AD-BCQ -> OPE).

Keep this module light: importing ``adrl`` must not import torch, pandas or mlflow.
"""

__version__ = "0.1.0"
