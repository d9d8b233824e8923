"""The mouse wheel changes a combo box, spin box or slider only while it has the focus; otherwise
it scrolls the form around it (issue 17, item 2)."""

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from unlearn_studio.core.paths import demo_project
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.gui import wheel_guard
from unlearn_studio.gui.jobs import Jobs
from unlearn_studio.gui.wizard import NewRunWizard

WAIT_MS = 120_000


def turn_wheel(widget: QWidget, notches: int = -1) -> None:
    """What one notch of a real mouse wheel over the middle of ``widget`` delivers."""
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def long_form(qtbot):
    area = QScrollArea()
    form = QWidget()
    layout = QVBoxLayout(form)
    for number in range(30):
        layout.addWidget(QLabel(f"row {number}"))
    combo = QComboBox()
    combo.addItems(["adamw", "adam", "sgd"])
    spin = QDoubleSpinBox()
    spin.setValue(1.0)
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setValue(50)
    first = QLabel("focus lands elsewhere")
    first.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    layout.insertWidget(0, first)
    for widget in (combo, spin, slider):
        layout.addWidget(widget)
    for number in range(30):
        layout.addWidget(QLabel(f"row {number}"))
    area.setWidget(form)
    area.resize(300, 300)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    first.setFocus()
    area.ensureWidgetVisible(spin)
    return area, combo, spin, slider


def test_the_wheel_scrolls_the_form_over_a_setting_without_focus(qtbot):
    wheel_guard.install(QApplication.instance())
    area, combo, spin, slider = long_form(qtbot)
    bar = area.verticalScrollBar()
    for widget in (combo, spin, spin.findChild(QWidget), slider):  # the spin box's line edit too
        before = bar.value()
        turn_wheel(widget, notches=1)
        assert bar.value() < before, widget  # the form scrolled up instead
        area.ensureWidgetVisible(spin)
    assert (combo.currentText(), spin.value(), slider.value()) == ("adamw", 1.0, 50)


def test_a_focused_setting_takes_the_wheel(qtbot):
    wheel_guard.install(QApplication.instance())
    area, combo, spin, slider = long_form(qtbot)
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    turn_wheel(combo)
    assert combo.currentText() == "adam"
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    turn_wheel(spin, notches=1)
    assert spin.value() == 2.0


def test_scrolling_the_wizards_advanced_settings_leaves_the_optimizer_alone(qtbot, screenshots):
    """The issue's case: scrolling down the method page's advanced settings over a dropdown."""
    wheel_guard.install(QApplication.instance())
    jobs = Jobs()
    wizard = NewRunWizard(jobs, RunConfig.load(demo_project()), demo_project())
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitUntil(wizard.model_page.isComplete, timeout=WAIT_MS)
    wizard.next()
    page = wizard.method_page
    qtbot.waitUntil(lambda: page.method_cls is not None, timeout=WAIT_MS)
    page.advanced.setChecked(True)
    optimizer, schedule = page.field("optimizer.name").widget, page.field("schedule.name").widget
    before = (optimizer.currentText(), schedule.currentText(), page.field("evaluation.suite").widget.currentText())
    page.scroll.ensureWidgetVisible(optimizer)
    bar = page.scroll.verticalScrollBar()
    start = bar.value()
    for combo in (optimizer, schedule, page.field("evaluation.suite").widget):
        turn_wheel(combo)
    assert (optimizer.currentText(), schedule.currentText(), page.field("evaluation.suite").widget.currentText()) == before
    assert bar.value() != start  # the form scrolled
    assert wizard.draft.optimizer.name == before[0]
    screenshots(wizard, "wizard_2_method_advanced", fits=lambda w, h: (min(980, w - 60), min(720, h - 60)))
    wizard.close()
    jobs.wait()
