"""Typed, validated view of params.yaml.

Every stage calls :func:`load_config`. An unknown key, a wrong type or an out-of-range value stops the
stage with a :class:`~adrl.errors.ConfigError` naming the key (``cohort.window.bin_h``) and what is
allowed. Each room owns its section model in ``adrl/<room>/params.py``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError

from .errors import ConfigError
from .params_base import Section
from .synth.params import SynthParams, SourceParams
from .mimic.params import IngestParams
from .cohort.params import CohortParams
from .ais.params import AisParams
from .rl.params import TrainParams
from .ope.params import EvaluateParams
from .report.params import ReportParams
from .executor import ExecutorParams


class Config(Section):
    seed: int = Field(0, ge=0, description="global seed; stages derive their own seeds from it")
    source: SourceParams = SourceParams()
    synth: SynthParams = SynthParams()
    ingest: IngestParams = IngestParams()
    cohort: CohortParams = CohortParams()
    ais: AisParams = AisParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()
    executor: ExecutorParams = ExecutorParams()


def default_params_path() -> Path:
    return Path(os.environ.get("ADRL_PARAMS", "params.yaml"))


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate params.yaml (``overrides``: dotted keys -> values, applied on top)."""
    path = Path(path) if path is not None else default_params_path()
    raw = read_params_file(path, "parameters file not found (run from the project root, or set ADRL_PARAMS)")
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    return validate_config(raw, where=str(path))


def read_params_file(path: Path, missing: str) -> dict[str, Any]:
    """The top-level mapping of a YAML parameters file; ConfigError names the file (``missing``: the message
    when it does not exist)."""
    if not path.exists():
        raise ConfigError(f"{path}: {missing}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return raw


def validate_config(raw: dict[str, Any], where: str = "params.yaml") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, where)) from None


def format_validation_error(e: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid parameters"]
    for err in e.errors():
        loc = [str(p) for p in err["loc"] if not _is_union_tag(p)]
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(Config, loc[:-1])
            lines.append(f"  {key}: unknown key; allowed keys here: {', '.join(allowed)}")
        else:
            got = err.get("input")
            # validators that already quote the value ("..., got [0.5, 0.5]") are not repeated
            got_s = "" if isinstance(got, dict) or "got " in err["msg"] else f" (got {got!r})"
            lines.append(f"  {key}: {err['msg']}{got_s}")
    return "\n".join(lines)


def _is_union_tag(p: Any) -> bool:
    # pydantic puts union member names (e.g. 'list[float]', 'literal[...]') in locs; they are not keys
    return isinstance(p, str) and ("[" in p or p in {"int", "float", "str", "bool", "none"})


def _allowed_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        sub = _model_in(ann)
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def _model_in(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    if get_origin(ann) is not None:
        for a in get_args(ann):
            m = _model_in(a)
            if m is not None:
                return m
    return None


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: {p} is not a section")
    node[parts[-1]] = value
