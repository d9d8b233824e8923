"""Memory estimate, pre-flight checks and the data preview the wizard shows (demo model, no weights loaded)."""

import copy

from unlearn_studio.core.paths import projects_dir
from unlearn_studio.core.project.config import DataSource, RunConfig
from unlearn_studio.core.project.preview import preview_role
from unlearn_studio.core.run.memory_estimate import estimate_memory, format_bytes
from unlearn_studio.core.run.preflight import ERROR, OK, preflight


def graddiff():
    return RunConfig.load(projects_dir() / "grad_diff.toml")


def test_the_estimate_counts_the_lora_parameters_exactly():
    estimate = estimate_memory(graddiff())
    # The runner reports 110,592 trainable parameters for this project; the estimate counts them
    # from the module shapes of the meta-device model.
    assert estimate.lora_parameters == 110_592
    assert estimate.adapter == estimate.gradients == 4 * 110_592 and estimate.optimizer == 2 * estimate.adapter
    assert estimate.forward_passes == 2  # forget and retain


def test_the_estimated_activations_grow_with_the_batch():
    config = graddiff()
    bigger = copy.deepcopy(config)
    bigger.training.batch_size *= 2
    assert estimate_memory(bigger).activations == 2 * estimate_memory(config).activations


def test_the_estimate_says_it_is_one():
    assert "estimate" in estimate_memory(graddiff()).summary() and format_bytes(3 * 2**20) == "3.0 MB"


def test_preflight_passes_the_demo():
    checks = preflight(graddiff())
    assert checks.ok and checks.estimate is not None
    assert [c.level for c in checks.checks[:3]] == [OK, OK, OK]


def test_preflight_names_a_missing_data_role():
    missing_role = graddiff()
    del missing_role.data["retain"]
    result = preflight(missing_role)
    assert not result.ok and any("retain" in c.detail for c in result.checks if c.level == ERROR)


def test_preflight_refuses_a_run_that_needs_more_memory_than_is_free():
    huge = graddiff()
    huge.training.batch_size, huge.training.max_length = 4096, 4096
    result = preflight(huge)
    assert not result.ok and any("more than is free" in c.title for c in result.checks)


def test_preflight_refuses_fp16_on_the_cpu():
    fp16 = graddiff()
    fp16.model.device, fp16.training.mixed_precision = "cpu", "fp16"
    assert any("fp16" in c.title and c.level == ERROR for c in preflight(fp16).checks)


def test_preview_role_shows_rows_and_the_decoded_first_batch():
    good = preview_role(graddiff(), "forget")
    assert good.valid and good.kind == "qa" and good.rows > 0
    assert good.batch and "«" in good.batch[0].text and good.batch[0].n_trained > 0


def test_preview_role_counts_bad_rows(tmp_path):
    config = graddiff()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?", "answer": "A."}\n{"question": "Q2?", "answer": ["x"]}\n', encoding="utf-8")
    config.data["forget"] = DataSource(str(bad))
    result = preview_role(config, "forget")
    assert not result.valid and result.bad_rows == 1 and "bad.jsonl:2" in result.row_errors[0]


def test_preview_role_reports_a_missing_file_where_relative_paths_start(tmp_path):
    config = graddiff()
    config.data["forget"] = DataSource("missing.jsonl")
    missing = preview_role(config, "forget")
    assert missing.error is not None and not missing.valid
    assert f"relative paths start next to the project file, in {config.base_dir}" in missing.error.fix
