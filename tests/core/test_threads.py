"""The intra-op thread count of a run: the project's setting, then OMP_NUM_THREADS, then the cores
this process may use, shared among the launcher's processes, less one for the app's window."""

import os
import threading

import pytest
import torch

from unlearn_studio.core.run.threads import (
    GUI_CORES,
    ThreadChoice,
    apply_threads,
    busy_elsewhere,
    cgroup_cores,
    choose_threads,
    started_in_app,
    usable_physical_cores,
)


def test_the_projects_setting_wins_over_the_environment():
    choice = choose_threads(3, environ={"OMP_NUM_THREADS": "1"}, in_app=True, cores=8, busy=0.0)
    assert choice.threads == 3 and "training.threads" in choice.reason


def test_omp_num_threads_wins_over_the_cores():
    choice = choose_threads(None, environ={"OMP_NUM_THREADS": "2"}, in_app=True, cores=8, busy=0.0)
    assert choice.threads == 2 and "OMP_NUM_THREADS" in choice.reason


def test_an_empty_or_bad_omp_num_threads_is_ignored():
    assert choose_threads(None, environ={"OMP_NUM_THREADS": ""}, in_app=False, cores=6, busy=0.0).threads == 6
    assert choose_threads(None, environ={"OMP_NUM_THREADS": "x"}, in_app=False, cores=6, busy=0.0).threads == 6


def test_the_app_leaves_its_window_a_core():
    choice = choose_threads(None, environ={}, in_app=True, cores=8, busy=0.0)
    assert choice.threads == 8 - GUI_CORES and "app's window" in choice.reason


def test_the_command_line_uses_every_physical_core():
    assert choose_threads(None, environ={}, in_app=False, cores=8, busy=0.0) == ThreadChoice(8, "8 physical cores")


def test_processes_of_one_machine_share_its_cores():
    choice = choose_threads(None, environ={"LOCAL_WORLD_SIZE": "4"}, in_app=False, cores=8, busy=0.0)
    assert choice.threads == 2 and "shared by 4 processes" in choice.reason


def test_cores_other_processes_keep_busy_are_left_to_them():
    choice = choose_threads(None, environ={}, in_app=False, cores=8, busy=2.6)
    assert choice.threads == 5 and "2.6 busy with other processes" in choice.reason
    assert choose_threads(None, environ={}, in_app=True, cores=8, busy=0.4).threads == 7  # under half a core: kept


def test_a_launchers_processes_are_not_counted_as_others():
    choice = choose_threads(None, environ={"LOCAL_WORLD_SIZE": "2"}, in_app=False, cores=8, busy=6.0)
    assert choice.threads == 4 and "busy" not in choice.reason


def test_busy_cores_are_measured_on_linux():
    busy = busy_elsewhere(0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 0.5


def test_never_fewer_than_one_thread():
    assert choose_threads(None, environ={}, in_app=True, cores=1, busy=0.0).threads == 1
    assert choose_threads(None, environ={"LOCAL_WORLD_SIZE": "8"}, in_app=False, cores=2, busy=0.0).threads == 1
    assert choose_threads(0, environ={}, in_app=False, cores=4, busy=0.0).threads == 1


def test_a_run_started_on_a_worker_thread_counts_as_the_app():
    seen = []
    worker = threading.Thread(target=lambda: seen.append(started_in_app()))
    worker.start()
    worker.join()
    assert seen == [True] and not started_in_app()


def test_cgroup_quota_in_cores(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n", encoding="ascii")
    assert cgroup_cores(cpu_max) == 1.5
    cpu_max.write_text("max 100000\n", encoding="ascii")
    assert cgroup_cores(cpu_max) is None
    assert cgroup_cores(tmp_path / "missing") is None


def test_usable_cores_are_at_least_one_and_at_most_the_logical_cpus():
    assert 1 <= usable_physical_cores() <= (os.cpu_count() or 1)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_apply_sets_torchs_intra_op_pool(restore_threads):
    apply_threads(ThreadChoice(1, "test"))
    assert torch.get_num_threads() == 1
    assert ThreadChoice(1, "x").describe() == "torch uses 1 intra-op thread (x)"
    assert ThreadChoice(2, "x").describe().startswith("torch uses 2 intra-op threads")
