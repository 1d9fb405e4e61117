"""The AIS network (method.md 2.3): input MLP -> GRU/LSTM (state z_t) and a next-observation decoder."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..actions import N_ACTIONS
from ..schemas import OBS_COLS
from .data import INPUT_COLUMNS

N_IN = len(INPUT_COLUMNS)   # 38 = 33 observations + 5 context
N_OBS = len(OBS_COLS)       # 33


class AisNet(nn.Module):
    """x_t = [o_t, c_t, onehot_25(a_t)] -> Linear-ReLU-Linear-ReLU -> RNN -> z_t;
    [z_t, onehot_25(A_t)] -> Linear-ReLU-Linear-ReLU-Linear -> o_hat_{t+1}."""

    def __init__(self, rnn: str = "gru", latent_dim: int = 64, hidden: int = 128):
        super().__init__()
        self.rnn_kind = rnn
        self.latent_dim = latent_dim
        self.phi = nn.Sequential(nn.Linear(N_IN + N_ACTIONS, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[rnn]
        self.rnn = rnn_cls(hidden, latent_dim, batch_first=True)
        self.decoder = nn.Sequential(nn.Linear(latent_dim + N_ACTIONS, hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, N_OBS))

    def encode(self, x: torch.Tensor, action: torch.Tensor, hidden=None):
        """x (B, T, 38), action (B, T) int -> z (B, T, d) and the RNN hidden state after the last step."""
        inp = torch.cat([x, F.one_hot(action, N_ACTIONS).to(x.dtype)], dim=-1)
        return self.rnn(self.phi(inp), hidden)

    def decode(self, z: torch.Tensor, next_action: torch.Tensor) -> torch.Tensor:
        """z (..., d), next_action (...) int -> predicted next observations (..., 33)."""
        return self.decoder(torch.cat([z, F.one_hot(next_action, N_ACTIONS).to(z.dtype)], dim=-1))
