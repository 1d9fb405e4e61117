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


def test_an_interruption_during_the_cleanup_of_a_finished_write_leaves_no_temp_folder(tmp_path, monkeypatch):
    # SIGTERM reaches a stage as SystemExit wherever it lands; on CI it once landed in atomic_path's own cleanup, just
    # after a run was renamed into place, and its temporary folder stayed behind
    import pytest

    import adrl.io as io

    real, calls = io.shutil.rmtree, []

    def interrupted_once(p, *a, **k):
        calls.append(p)
        if len(calls) == 1:
            raise SystemExit(143)   # the signal arrives as the cleanup starts
        return real(p, *a, **k)

    monkeypatch.setattr(io.shutil, "rmtree", interrupted_once)
    out = tmp_path / "runs" / "bcq-tau0.3-s2"
    with pytest.raises(SystemExit):
        with atomic_path(out) as tmp:
            tmp.mkdir()
            (tmp / "run.json").write_text("{}")
    assert (out / "run.json").read_text() == "{}"          # the write itself had finished
    assert [p.name for p in out.parent.iterdir()] == ["bcq-tau0.3-s2"]
