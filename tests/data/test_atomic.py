"""Atomic writes: the target appears complete or not at all, and no temporary is left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from croco_pipeline.data.atomic import (
    atomic_folder,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
)


class WriterFailed(RuntimeError):
    pass


def test_writes_into_a_new_folder_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_a_failing_writer_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    with pytest.raises(WriterFailed), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.tif.")
        raise WriterFailed
    assert list(tmp_path.iterdir()) == []


def test_a_failing_writer_keeps_the_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"top1": 0.5})
    with pytest.raises(TypeError, match="not JSON serializable"):
        atomic_write_json(target, {"top1": object()})
    assert json.loads(target.read_text()) == {"top1": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_json_keyword_arguments_reach_json_dumps(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "r.json", {"b": 1, "a": Path("x")}, sort_keys=True, default=str)
    assert (tmp_path / "r.json").read_text() == '{"a": "x", "b": 1}'


def test_atomic_folder_swaps_whole_and_keeps_the_old_one_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "map"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_folder(target) as tmp:
            (tmp / "b.txt").write_text("second")
            raise RuntimeError("half-way")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with atomic_folder(target) as tmp:
        (tmp / "c.txt").write_text("third")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map"]  # no temporary or .old left
