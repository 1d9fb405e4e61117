"""A trained, frozen AIS encoder: load from models/ais/, encode whole tables or one step at a time.

    enc = AisEncoder.load("models/ais")
    states = enc.encode_trajectories(trajectories)      # the states contract (adrl.schemas)
    h = enc.start(n)                                     # n new stays
    z, h = enc.step(h, obs_demog, prev_action)           # row t: o:+m: values (n, 38), action of row t (n,)

Applying ``step`` to rows 0..t of a stay gives the z_t that ``encode_trajectories`` writes for row t
(bit-identical when the same stays are stepped together in one batch, as the table encoder batches them).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from ..actions import N_ACTIONS
from ..errors import InputError
from ..io import atomic_path, without_timings
from ..schemas import OBS_COLS, STATES_DECISION_COLUMNS, STATES_ID_COLUMNS, z_columns
from .data import INPUT_COLUMNS, Padded, to_padded, validate_trajectories
from .model import N_IN, AisNet

log = logging.getLogger("adrl.ais")

FORMAT = "adrl-ais/1"
WEIGHTS = "model.pt"
CONFIG = "config.json"
TRAINING = "training.json"


class AisEncoder:
    def __init__(self, net: AisNet, config: dict, training: dict | None = None):
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.config = config
        self.training = training or {}

    # ---- construction and persistence -------------------------------------------------------------
    @classmethod
    def from_net(cls, net: AisNet, hidden: int, training: dict | None = None) -> "AisEncoder":
        config = {
            "format": FORMAT,
            "rnn": net.rnn_kind,
            "latent_dim": net.latent_dim,
            "hidden": hidden,
            "input_columns": list(INPUT_COLUMNS),
            "target_columns": list(OBS_COLS),
            "n_actions": N_ACTIONS,
            "action_encoding": "one-hot of the flat action 5*fluid_bin + vaso_bin (adrl.actions)",
            "time_alignment": "z_t = Enc(x_0..x_t), x_t = [o_t, m_t, onehot(action of row t)]; "
                              "decoder predicts o_{t+1} from [z_t, onehot(action of row t+1)] (method.md 2.2)",
            "hidden_state": "gru: z (n, d); lstm: [h, c] (n, 2d), z = h",
            "expects": "o:/m: columns normalised as by the cohort stage (normalization.json, copied here "
                       "when it was available at training time)",
        }
        return cls(net, config, training)

    @classmethod
    def load(cls, directory: str | Path) -> "AisEncoder":
        directory = Path(directory)
        for name in (CONFIG, WEIGHTS):
            if not (directory / name).exists():
                raise InputError(f"{directory / name}: AIS model file not found (run the encode stage first)")
        config = json.loads((directory / CONFIG).read_text())
        if config.get("format") != FORMAT:
            raise InputError(f"{directory / CONFIG}: unknown model format {config.get('format')!r}; expected {FORMAT}")
        if config.get("input_columns") != list(INPUT_COLUMNS):
            raise InputError(f"{directory / CONFIG}: the model expects input columns {config.get('input_columns')}, "
                             f"which differ from this version's {list(INPUT_COLUMNS)}")
        net = AisNet(config["rnn"], int(config["latent_dim"]), int(config["hidden"]))
        state = torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise InputError(f"{directory / WEIGHTS}: weights do not match {directory / CONFIG}: {e}") from None
        training = json.loads((directory / TRAINING).read_text()) if (directory / TRAINING).exists() else {}
        return cls(net, config, training)

    def save(self, directory: str | Path, normalization: str | Path | None = None) -> None:
        """Write weights, config and training metadata to ``directory`` atomically (replacing it)."""
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            torch.save(self.net.state_dict(), tmp / WEIGHTS)
            config = dict(self.config)
            if normalization is not None and Path(normalization).exists():
                (tmp / "normalization.json").write_text(Path(normalization).read_text())
                config["normalization"] = "normalization.json"
            (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
            # no wall-clock fields: models/ais is reproducible byte for byte (the stage records the timings)
            (tmp / TRAINING).write_text(json.dumps(without_timings(self.training), indent=2, default=_json) + "\n")

    # ---- properties --------------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return int(self.config["latent_dim"])

    @property
    def rnn(self) -> str:
        return str(self.config["rnn"])

    @property
    def input_columns(self) -> list[str]:
        return list(INPUT_COLUMNS)

    # ---- whole tables ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_padded(self, p: Padded, batch_size: int = 1024) -> np.ndarray:
        """(N, T, d) float32 states; rows past a stay's length are 0 (padding)."""
        N, T = p.action.shape
        out = np.zeros((N, T, self.latent_dim), np.float32)
        for i in range(0, N, batch_size):
            z, _ = self.net.encode(torch.from_numpy(p.x[i:i + batch_size]), torch.from_numpy(p.action[i:i + batch_size]))
            out[i:i + batch_size] = z.numpy()
        out[np.arange(T)[None, :] >= p.length[:, None]] = 0.0
        return out

    def encode_trajectories(self, df: pd.DataFrame, where: str = "trajectory table",
                            batch_size: int = 1024) -> pd.DataFrame:
        """One row per input row, in input order: ids, z_0..z_{d-1} (float32) and the decision columns."""
        validate_trajectories(df, where)
        p = to_padded(df)
        z = self.encode_padded(p, batch_size)[p.row_traj, p.row_step]
        return states_frame(df, z)

    # ---- step by step ------------------------------------------------------------------------------
    def start(self, n: int) -> np.ndarray:
        """The hidden state of ``n`` new stays (before row 0): zeros, (n, d) for GRU, (n, 2d) for LSTM."""
        width = self.latent_dim * (2 if self.rnn == "lstm" else 1)
        return np.zeros((int(n), width), np.float32)

    @torch.no_grad()
    def step(self, hidden: np.ndarray, obs_demog: np.ndarray, prev_action: np.ndarray):
        """Feed row t of n stays: o:+m: values (n, 38) normalised, in schema order, and the flat action of
        row t (n,), i.e. the action that precedes the decision at t. Returns (z_t (n, d), new hidden)."""
        d = self.latent_dim
        hidden = np.array(hidden, np.float32)      # copies: torch never aliases the caller's arrays
        x = np.array(obs_demog, np.float32)
        a = np.asarray(prev_action)
        if x.ndim != 2 or x.shape[1] != N_IN:
            raise InputError(f"AisEncoder.step: obs_demog must have shape (n, {N_IN}) (o: then m: columns); "
                             f"got {x.shape}")
        n = len(x)
        if not np.isfinite(x).all():
            cols = [INPUT_COLUMNS[j] for j in np.flatnonzero(~np.isfinite(x).all(0))]
            raise InputError(f"AisEncoder.step: obs_demog has NaN or infinite values in {cols}")
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer) or ((a < 0) | (a >= N_ACTIONS)).any():
            raise InputError(f"AisEncoder.step: prev_action must be {n} integer flat actions in 0..{N_ACTIONS - 1}")
        width = d * (2 if self.rnn == "lstm" else 1)
        if hidden.shape != (n, width):
            raise InputError(f"AisEncoder.step: hidden has shape {hidden.shape}, expected ({n}, {width}) for {n} "
                             "stays; use start(n) for new stays")
        h = torch.from_numpy(hidden)
        state = (h[:, :d][None].contiguous(), h[:, d:][None].contiguous()) if self.rnn == "lstm" else h[None]
        z, new = self.net.encode(torch.from_numpy(x)[:, None], torch.from_numpy(a.astype(np.int64))[:, None], state)
        z = z[:, 0].numpy().copy()
        new_h = torch.cat([new[0][0], new[1][0]], 1).numpy() if self.rnn == "lstm" else new[0].numpy()
        return z, new_h

    @torch.no_grad()
    def predict_next_obs(self, z: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The decoder: expected normalised o_{t+1} (n, 33) given z_t (n, d) and the decision A_t (n,)."""
        z = np.asarray(z, np.float32)
        a = np.asarray(action, np.int64)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or a.shape != (len(z),):
            raise InputError(f"AisEncoder.predict_next_obs: need z (n, {self.latent_dim}) and action (n,)")
        return self.net.decode(torch.from_numpy(z), torch.from_numpy(a)).numpy()


def states_frame(df: pd.DataFrame, z: np.ndarray) -> pd.DataFrame:
    """The states contract from a validated trajectory table (sorted by traj, step) and its states z."""
    traj = df["traj"].to_numpy()
    last = np.r_[traj[1:] != traj[:-1], True]

    def nxt(col: str, fill, dtype):
        v = np.r_[df[col].to_numpy()[1:], df[col].to_numpy()[:1]]
        return np.where(last, fill, v).astype(dtype)

    cols: dict[str, object] = {c: df[c].to_numpy().astype(t if t != "string" else object)
                               for c, t in STATES_ID_COLUMNS.items()}
    cols["split"] = pd.array(df["split"].astype(str).to_numpy(), dtype="string")
    cols.update({c: z[:, i].astype(np.float32) for i, c in enumerate(z_columns(z.shape[1]))})
    cols["decision_fluid"] = nxt("fluid_bin", -1, np.int8)
    cols["decision_vaso"] = nxt("vaso_bin", -1, np.int8)
    cols["decision"] = nxt("action", -1, np.int8)
    cols["reward"] = nxt("reward", 0.0, np.float32)
    cols["done"] = nxt("done", False, bool)
    cols["last"] = last
    return pd.DataFrame(cols)


def states_arrow_schema(d: int) -> pa.Schema:
    types = {"int64": pa.int64(), "int32": pa.int32(), "int16": pa.int16(), "int8": pa.int8(),
             "string": pa.string(), "float": pa.float32(), "bool": pa.bool_()}
    fields = [pa.field(c, types[t]) for c, t in STATES_ID_COLUMNS.items()]
    fields += [pa.field(c, pa.float32()) for c in z_columns(d)]
    fields += [pa.field(c, types[t]) for c, t in STATES_DECISION_COLUMNS.items()]
    return pa.schema(fields)


def states_table(states: pd.DataFrame) -> pa.Table:
    """The states frame as a pyarrow Table with the exact contract types."""
    d = sum(1 for c in states.columns if c.startswith("z_"))
    return pa.Table.from_pandas(states, schema=states_arrow_schema(d), preserve_index=False)


def _json(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o).__name__)
