"""Everything usable at 1024 x 700 (issue 17, item 7): the main window, every wizard page and the
dialogs fit such a screen, and what used to be clipped there (the small plots' titles, the Compare
page's decoding labels) is shown whole."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui.jobs import Jobs
from unlearn_studio.gui.wizard import NewRunWizard

SMALL = (1024, 700)
FRAME = 60  # a window's title bar and the desktop's panel take this much of a small screen
WAIT_MS = 300_000


def fits(widget, width: int = SMALL[0], height: int = SMALL[1] - FRAME) -> bool:
    hint = widget.minimumSizeHint().expandedTo(widget.minimumSize())
    return hint.width() <= width and hint.height() <= height


def whole(label: QLabel) -> bool:
    """The label shows its whole text (not clipped)."""
    return label.isVisible() and label.width() >= label.sizeHint().width()


def test_the_main_window_fits_and_its_small_plots_keep_their_titles(qtbot, window):
    assert window.open_project(demo_project())
    assert fits(window, *SMALL), window.minimumSizeHint()  # the window itself can be 1024 x 700
    window.resize(*SMALL)
    window.page.tabs.setCurrentWidget(window.page.runs_holder)
    qtbot.waitExposed(window)
    view = window.runs.monitor.view
    for plot in view.plots()[:3]:
        assert whole(plot.title), plot.title.text()
        assert plot.widget.height() >= 80  # room for the curve, not only its axes


def test_every_wizard_page_fits_a_small_screen(qtbot):
    jobs = Jobs()
    wizard = NewRunWizard(jobs, RunConfig.load(demo_project()), demo_project())
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitUntil(wizard.model_page.isComplete, timeout=WAIT_MS)
    for page in (wizard.model_page, wizard.method_page, wizard.data_page, wizard.review_page):
        if wizard.currentPage() is not page:
            wizard.next()
        if page is wizard.method_page:
            qtbot.waitUntil(lambda: page.method_cls is not None, timeout=WAIT_MS)
            page.advanced.setChecked(True)
        if page is wizard.data_page:
            qtbot.waitUntil(page.isComplete, timeout=WAIT_MS)
        assert fits(wizard, SMALL[0] - 20, SMALL[1] - FRAME), (type(page).__name__, wizard.minimumSizeHint())
    wizard.close()
    jobs.wait()


def test_the_method_list_shows_each_description_whole(qtbot):
    jobs = Jobs()
    wizard = NewRunWizard(jobs, RunConfig.load(demo_project()), demo_project())
    qtbot.addWidget(wizard)
    wizard.resize(SMALL[0] - FRAME, SMALL[1] - FRAME)
    wizard.show()
    qtbot.waitUntil(wizard.model_page.isComplete, timeout=WAIT_MS)
    wizard.next()
    page = wizard.method_page
    qtbot.waitUntil(lambda: page.method_cls is not None, timeout=WAIT_MS)
    methods = page.list
    for row in range(methods.count()):
        item = methods.item(row)
        lines = methods.fontMetrics().boundingRect(0, 0, methods.visualItemRect(item).width(), 10_000,
                                                   int(Qt.TextFlag.TextWordWrap), item.text()).height()
        assert methods.visualItemRect(item).height() >= lines, item.text()  # no line cut off (ELM's was)
    wizard.close()
    jobs.wait()


def test_the_export_and_combine_dialogs_fit_a_small_screen(qtbot, window):
    from unlearn_studio.gui.export_dialog import ExportDialog
    from unlearn_studio.gui.extsub_dialog import ExtSubDialog

    config = RunConfig.load(demo_project())
    project_id = window.store.ensure_project(config.name, demo_project())
    run_id = window.store.start_run(project_id, config, demo_project().parent / "runs" / "none")
    window.store.set_status(run_id, "failed")
    export = ExportDialog(window.store, run_id, window.jobs, parent=window)
    combine = ExtSubDialog(window.jobs, window.store, project_id, config, parent=window)
    for dialog in (export, combine):
        qtbot.addWidget(dialog)
        assert fits(dialog), (type(dialog).__name__, dialog.minimumSizeHint())
