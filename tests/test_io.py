"""Atomic writes: a writer that dies leaves the old file or no folder, never a half-written one."""

import os
import stat

import pytest

from autocompress.engine._io import atomic_dir, atomic_path, write_json


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


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def test_written_files_and_folders_get_the_usual_mode_under_the_umask(tmp_path, umask):
    """Temporary files are created 0600 and folders 0700; what lands has the mode open() and mkdir()
    would give, so a server running as another user can read an export."""
    write_json(tmp_path / "a.json", {"x": 1})
    with atomic_dir(tmp_path / "folder") as tmp:
        write_json(tmp / "inner.json", {})
        (tmp / "plain.txt").write_text("made by open()")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "folder" / "inner.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "folder" / "plain.txt").stat().st_mode) == 0o666 & ~umask
