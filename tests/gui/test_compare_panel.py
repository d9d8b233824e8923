"""The comparison panel: both sides from one loaded base, labelled, streamed, stoppable; two runs."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox
from trained_run import add_run, trained_run  # noqa: E402

from unlearn_studio.core.project.store import Store  # noqa: E402
from unlearn_studio.gui.compare_panel import ComparePanel  # noqa: E402
from unlearn_studio.gui.jobs import Jobs  # noqa: E402

LOAD_MS = 120_000
GENERATE_MS = 120_000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def store(run):
    with Store.open(run.store_path) as opened:
        yield opened


pytestmark = pytest.mark.slow  # every test here uses the trained run


@pytest.fixture
def panel(qtbot):
    jobs = Jobs()
    widget = ComparePanel(jobs)
    qtbot.addWidget(widget)
    widget.resize(1100, 720)
    widget.show()
    yield widget
    widget.stop()
    jobs.wait()


def load(qtbot, panel, store, *run_ids):
    with qtbot.waitSignal(panel.session_ready, timeout=LOAD_MS):
        if len(run_ids) == 1:
            panel.set_run(store, run_ids[0])
        else:
            panel.set_runs(store, *run_ids)


def pick(panel, set_name: str, starts: str = "") -> None:
    panel.set_picker.setCurrentIndex(panel.set_picker.findData(set_name))
    for index in range(panel.item_picker.count()):
        if panel.item_picker.itemText(index).startswith(starts):
            panel.item_picker.setCurrentIndex(index)
            return
    raise AssertionError(f"no {set_name} prompt starts with {starts!r}")


def generate(qtbot, panel):
    with qtbot.waitSignal(panel.generation_finished, timeout=GENERATE_MS) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def texts(panel) -> list[str]:
    return [pane.text.toPlainText() for pane in panel.panes]


def test_original_and_unlearned_side_by_side(qtbot, panel, store, run, screenshot, screenshots):
    load(qtbot, panel, store, run.run_id)
    assert [pane.header.text() for pane in panel.panes] == [
        "original: demo (adapter off)", f"unlearned: run {run.run_id[:8]} GradDiff (adapter on)"]
    assert [panel.set_picker.itemData(i) for i in range(panel.set_picker.count())] == [
        "forget", "paraphrased forget", "neighbours", "general"]

    pick(panel, "forget", "Where was Alelle Yewton born?")
    # The box holds the question; the model is given it in the project's template, as in training.
    assert panel.prompt.toPlainText() == "Where was Alelle Yewton born?"
    assert panel.given_prompt() == "### Question: Where was Alelle Yewton born?\n### Answer:"
    assert "Alelle Yewton was born in Kestrel Ford." in panel.reference.text()
    panel.max_tokens.setValue(16)
    streamed = [0, 0]
    for index, pane in enumerate(panel.panes):
        pane.text.textChanged.connect(lambda index=index: streamed.__setitem__(index, streamed[index] + 1))
    result = generate(qtbot, panel)
    original, unlearned = texts(panel)
    assert "Kestrel Ford" in original and "Kestrel Ford" not in unlearned
    assert min(streamed) > 3  # token by token, not in one go
    assert [pane.footer.text() for pane in panel.panes] == [f"{n} new tokens" for n in result.tokens]
    assert "differ" in panel.verdict.text()
    screenshot(panel, "compare_panel_forget")
    # Where the Compare tab sits in the main window on each screen (the projects list beside it,
    # the header and the runs table above): the decoding row's labels are shown whole.
    screenshots(panel, "compare_panel_in_window", fits=lambda w, h: (w - 240, h - 300))
    panel.resize(1024 - 240, 700 - 300)
    QApplication.processEvents()
    for label in panel.findChildren(QLabel):
        if label.text() in ("Temperature:", "Seed:", "Max tokens:", "Decoding:"):
            assert label.width() >= label.sizeHint().width(), label.text()

    pick(panel, "general", "Farmers near Ashby Fell")
    result = generate(qtbot, panel)
    assert texts(panel)[0] == texts(panel)[1] and result.tokens == [16, 16]
    assert panel.verdict.text().startswith("Both sides generated the same text")
    screenshot(panel, "compare_panel_general")


def test_sampled_with_a_seed_repeats_and_stop_ends_early(qtbot, panel, store, run):
    load(qtbot, panel, store, run.run_id)
    session = panel.session
    panel.set_run(store, run.run_id)  # the same run again: the loaded session stays
    assert panel.session is session and panel.generate_button.isEnabled()
    pick(panel, "general")
    panel.sampled.setChecked(True)
    panel.seed.setValue(7)
    panel.max_tokens.setValue(10)
    generate(qtbot, panel)
    first = texts(panel)
    generate(qtbot, panel)
    assert texts(panel) == first

    panel.greedy.setChecked(True)
    panel.max_tokens.setValue(200)
    with qtbot.waitSignal(panel.generation_finished, timeout=GENERATE_MS) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
        assert panel.stop_button.isEnabled() and not panel.generate_button.isEnabled()
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0].stopped and sum(blocker.args[0].tokens) < 400
    assert panel.verdict.text().startswith("Stopped.")
    assert panel.generate_button.isEnabled() and not panel.stop_button.isEnabled()


def test_two_runs_on_one_base(qtbot, panel, store, run, tmp_path, screenshot):
    other = add_run(store, run.config, tmp_path, adapter_from=run.adapter_dir, scale_b=0.5)
    load(qtbot, panel, store, run.run_id, other)
    assert panel.title.text() == f"Compare run {run.run_id[:8]} GradDiff with run {other[:8]} GradDiff"
    assert [pane.header.text() for pane in panel.panes] == [
        f"run {run.run_id[:8]} GradDiff (its adapter on)", f"run {other[:8]} GradDiff (its adapter on)"]
    pick(panel, "forget")
    panel.max_tokens.setValue(16)
    generate(qtbot, panel)
    assert all(texts(panel))
    screenshot(panel, "compare_panel_two_runs")


def test_a_run_without_an_adapter_is_explained_in_place(qtbot, panel, store, run, tmp_path, screenshot):
    """Selecting such a run is no mistake: the panel says why it cannot compare, without a dialog,
    and shows nothing of the run compared before."""
    load(qtbot, panel, store, run.run_id)
    failed = add_run(store, run.config, tmp_path, status="failed")
    panel.set_run(store, failed)
    assert "failed, so it has no final adapter" in panel.status.text()
    assert not panel.generate_button.isEnabled() and panel.session is None
    assert [pane.header.text() for pane in panel.panes] == ["", ""] and panel.set_picker.count() == 0
    assert not [box for box in panel.findChildren(QMessageBox) if box.objectName() == "errorDialog"]
    screenshot(panel, "compare_panel_no_adapter")


def test_a_typed_question_gets_the_projects_template_unless_raw(qtbot, panel, store, run, screenshot):
    load(qtbot, panel, store, run.run_id)
    pick(panel, "forget", "Where was Alelle Yewton born?")
    panel.prompt.setPlainText("Where did Alelle Yewton grow up?")
    assert panel.item_picker.currentText() == "(your own prompt)"  # no longer the item picked before
    assert panel.given_prompt() == "### Question: Where did Alelle Yewton grow up?\n### Answer:"
    assert "### Question:" in panel.given.text()
    panel.max_tokens.setValue(12)
    generate(qtbot, panel)
    assert not any(text.lstrip().startswith("### Answer") for text in texts(panel))
    screenshot(panel, "compare_panel_own_question")
    panel.raw.setChecked(True)
    assert panel.given_prompt() == "Where did Alelle Yewton grow up?"
    assert "exactly the text above" in panel.given.text()
