"""Atomic writes: a writer that dies leaves the old file or no folder, never a half-written one."""

import pytest

from autocompress._io import atomic_dir, atomic_path


def test_atomic_dir_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "entry"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("the writer died")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_atomic_dir_appears_whole(tmp_path):
    target = tmp_path / "entry"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
        (tmp / "b").write_text("2")
        assert not target.exists()  # nothing visible under the real name while writing
        assert tmp.name.startswith(".entry.")  # the work folder is hidden and named apart
    assert sorted(p.name for p in target.iterdir()) == ["a", "b"]


def test_atomic_path_keeps_the_old_file_until_the_new_one_is_complete(tmp_path):
    f = tmp_path / "meta.json"
    f.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(f) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("the writer died")
    assert f.read_text() == "old"
    with atomic_path(f) as tmp:
        tmp.write_text("new")
    assert f.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]
