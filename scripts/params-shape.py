"""Rewrite params.yaml in the shape `dvc exp run -S` writes back, so that an experiment's diff is its changed lines.

DVC rewrites the whole file when it sets a parameter: flow mappings re-wrapped at 80 columns, flow lists turned
into block lists, null written as an empty value. This script makes those changes once (comments kept), then
passes the file through DVC's own writer with a no-op override and checks that a second pass changes nothing.
Comments inside a flow mapping cannot be kept per key: put them back by hand after a reshape.

    python scripts/params-shape.py [params.yaml]
"""
from __future__ import annotations

import sys
from pathlib import Path


def _block(node) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, (CommentedMap, CommentedSeq)):
        node.fa.set_block_style()
        for v in (node.values() if isinstance(node, CommentedMap) else node):
            _block(v)


def reshape(path: Path) -> None:
    from dvc.utils.hydra import apply_overrides
    from dvc.utils.serialize._yaml import _get_yaml

    yaml = _get_yaml()
    data = yaml.load(path.read_text())
    _block(data)
    with open(path, "w") as f:
        yaml.dump(data, f)
    seed = data.get("seed", 0)
    apply_overrides(str(path), [f"seed={seed}"])  # DVC's writer, changing nothing
    once = path.read_text()
    apply_overrides(str(path), [f"seed={seed}"])
    if path.read_text() != once:
        raise SystemExit(f"{path}: DVC's writer still changes the file on a second pass")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "params.yaml")
    reshape(target)
    print(f"{target}: in the shape `dvc exp run -S` writes back")
