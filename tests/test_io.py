"""Atomic writes: what a killed stage left behind is removed by the next write of the same output."""
import tempfile

from adrl.io import atomic_path, write_json


def test_next_write_removes_the_temp_folders_a_killed_write_left(tmp_path):
    out = tmp_path / "models" / "train"
    out.parent.mkdir()
    # what `kill -9` during `with atomic_path(out)` leaves: .train.XXXXXXXX.tmp/train/... (and one for ingest)
    stale = [tempfile.mkdtemp(prefix=".train.", suffix=".tmp", dir=out.parent) for _ in range(2)]
    (tmp_path / "models" / stale[0] / "train").mkdir()
    other = tempfile.mkdtemp(prefix=".train.json.", suffix=".tmp", dir=out.parent)   # another output's: kept
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "runs.json").write_text("{}")
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(["train", other.rsplit("/", 1)[-1]])
    write_json(out.parent / "train.json", {"a": 1})
    assert sorted(p.name for p in out.parent.iterdir()) == ["train", "train.json"]
