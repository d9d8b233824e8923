"""Folders the app writes: new or empty targets only, an earlier folder of the app's replaced only
when asked, a folder the app did not create never deleted or overwritten."""

from __future__ import annotations

import os

import pytest

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.files import (
    MARKER,
    building,
    check_output_folder,
    mark_as_own,
    own_kind,
    remove_own_folder,
    write_dir_atomically,
)


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_result(folder):
    (folder / "result.txt").write_text("new")


def users_folder(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.txt").write_text("three years of work")
    (folder / "figures").mkdir()
    (folder / "figures" / "plot.png").write_bytes(b"\x89PNG")
    return folder


def test_a_new_folder_is_written_whole_and_marked(tmp_path):
    out = write_dir_atomically(tmp_path / "a" / "out", write_result, kind="adapter")
    assert (out / "result.txt").read_text() == "new"
    assert own_kind(out) == "adapter"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["out"]  # no staging folder left


def test_an_empty_folder_of_the_users_is_kept_and_filled(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    inode = empty.stat().st_ino
    write_dir_atomically(empty, write_result, kind="export")
    assert empty.stat().st_ino == inode  # the same folder, not a replacement
    assert (empty / "result.txt").read_text() == "new" and own_kind(empty) == "export"


def test_a_folder_the_app_did_not_write_is_refused_before_any_work(tmp_path):
    folder = users_folder(tmp_path)
    before = snapshot(folder)
    calls = []
    for overwrite in (False, True):
        with pytest.raises(UserError) as refused:
            write_dir_atomically(folder, calls.append, kind="demo", overwrite=overwrite)
        assert str(folder) in refused.value.problem
        assert "thesis.txt" in refused.value.problem and "figures/" in refused.value.problem
        assert "never deletes or overwrites" in refused.value.fix
    assert calls == [] and snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


def test_an_earlier_folder_of_the_app_is_replaced_only_when_asked(tmp_path):
    out = write_dir_atomically(tmp_path / "out", write_result, kind="adapter")
    (out / "old.txt").write_text("from the first write")
    with pytest.raises(UserError, match="earlier adapter written by Unlearn Studio") as refused:
        write_dir_atomically(out, write_result, kind="adapter")
    assert "--overwrite" in refused.value.fix
    assert (out / "old.txt").exists()
    write_dir_atomically(out, write_result, kind="adapter", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "result.txt"])


def test_a_failed_write_leaves_the_target_as_it_was(tmp_path):
    out = write_dir_atomically(tmp_path / "out", write_result, kind="checkpoint")
    before = snapshot(out)

    def broken(folder):
        (folder / "half.bin").write_bytes(b"\0" * 10)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_dir_atomically(out, broken, kind="checkpoint", overwrite=True)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_foreign_file_appearing_while_writing_is_not_overwritten(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(UserError, match="did not write"):  # noqa: PT012 - the body is the race
        with building(target, kind="export") as staging:
            (staging / "result.txt").write_text("new")
            target.mkdir()
            (target / "NOTES.txt").write_text("mine")
    assert snapshot(target) == {"NOTES.txt": b"mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_is_never_replaced_by_a_folder(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(UserError, match="is a file"):
        check_output_folder(tmp_path / "out", what="export")


def test_only_folders_the_app_created_are_removed(tmp_path):
    folder = users_folder(tmp_path)
    assert not remove_own_folder(folder) and snapshot(folder)
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / MARKER).write_text('{"created_by": "someone else"}')
    assert not remove_own_folder(tmp_path / "fake")
    run = tmp_path / "run"
    run.mkdir()
    mark_as_own(run, "run", run_id="abc")
    assert not remove_own_folder(run, "adapter") and run.is_dir()  # the wrong kind
    assert remove_own_folder(run, "run") and not run.exists()
    assert not remove_own_folder(tmp_path / "missing")


def test_the_marker_has_no_time_stamp_so_rebuilds_are_byte_for_byte(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        mark_as_own(folder, "demo")
    assert (first / MARKER).read_bytes() == (second / MARKER).read_bytes()
    assert os.path.getsize(first / MARKER) < 100
