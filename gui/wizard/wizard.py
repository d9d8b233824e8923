"""The new-run wizard: Model → Method → Data → Review.

The method comes before the data because the method decides which data roles a run needs
(GradDiff: forget and retain; SKU: harmful and normal; Ext-Sub: expert and anti-expert): a person
first says how to unlearn, then the data page asks for exactly those files, instead of asking for
files that a later choice makes useless. The wizard edits one draft RunConfig; on Start it is
saved as a project file, the single source of truth that the command line can run too.
"""

from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget, QWizard

from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.files import rebased, suggest_project_path
from unlearn_studio.core.run.launch import accelerate_command, run_command
from unlearn_studio.gui.jobs import Jobs
from unlearn_studio.gui.wizard.data_page import DataPage
from unlearn_studio.gui.wizard.method_page import MethodPage
from unlearn_studio.gui.wizard.model_page import ModelPage
from unlearn_studio.gui.wizard.review_page import ReviewPage


def _all_methods():
    # The methods import torch: read on a worker, so the wizard opens at once.
    from unlearn_studio.core.methods.registry import all_methods

    return all_methods()


SCREEN_MARGIN = 60  # room for the window frame and the desktop's panels


class NewRunWizard(QWizard):
    methods_loaded = Signal()

    def __init__(self, jobs: Jobs, config: RunConfig, project_path: Path | None, *, draft: RunConfig | None = None,
                 store_path: Path | None = None, taken_names: set[str] | frozenset = frozenset(), busy: bool = False,
                 parent: QWidget | None = None):
        """``draft``: where the settings start when not at ``config`` (a clone under a new name);
        ``taken_names``: other projects' names, which a new project should not repeat; ``busy``: a
        run is in progress, so Start puts this one in the queue."""
        super().__init__(parent)
        self.setObjectName("newRunWizard")
        self.setWindowTitle("New run")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.jobs = jobs
        self.base_config = copy.deepcopy(config)
        self.base_path = Path(project_path) if project_path else None
        self.draft = copy.deepcopy(draft or config)
        self.store_path = store_path
        self.taken_names = set(taken_names) - {config.name}
        self.busy = busy
        self.project_path = self.base_path or suggest_project_path(config)
        self.methods: list = []

        self.model_page = ModelPage(self)
        self.method_page = MethodPage(self)
        self.data_page = DataPage(self)
        self.review_page = ReviewPage(self)
        for page in (self.model_page, self.method_page, self.data_page, self.review_page):
            self.addPage(page)
        self.review_page.initialize_buttons(self)
        self.fit_to_screen()
        jobs.start(lambda ctx: _all_methods(), self._methods_arrived, name="Reading the methods")

    def fit_to_screen(self) -> None:
        """980 x 720 where the screen has room; smaller on a small screen (a 1024 x 768 laptop)."""
        room = self.screen().availableGeometry()
        self.resize(min(980, room.width() - SCREEN_MARGIN), min(720, room.height() - SCREEN_MARGIN))

    # ---- methods ---------------------------------------------------------------------------------

    def _methods_arrived(self, methods) -> None:
        self.methods = list(methods)
        if self.currentPage() is self.method_page:
            self.method_page.show_methods(self.methods)
        self.method_page.completeChanged.emit()
        self.methods_loaded.emit()

    def method_class(self):
        return next(cls for cls in self.methods if cls.name == self.draft.method.name)

    # ---- the result ------------------------------------------------------------------------------

    def unchanged(self) -> bool:
        """The draft is the project the wizard started from: the run uses that file as it is."""
        return self.base_path is not None and self.draft == self.base_config

    def suggest_path(self) -> Path:
        if self.unchanged():
            return self.base_path
        folder = self.base_path.parent if self.base_path else None
        return suggest_project_path(self.draft, folder)

    def headless_command(self) -> str:
        """`unlearn-studio run PROJECT --store DB` for this run."""
        return run_command(self.project_path, self.store_path)

    def command_line(self) -> str:
        """The headless command for this run, and the same run data-parallel on several GPUs."""
        return (f"{self.headless_command()}\n\n"
                f"# the same run on 8 GPUs of one machine (docs/SCALING.md: multi-node, DeepSpeed, FSDP):\n"
                f"{accelerate_command(self.project_path, self.store_path)}")

    def result_config(self) -> RunConfig:
        """The draft as it will be saved at ``project_path`` (relative paths rebased to its folder)."""
        return rebased(self.draft, Path(self.project_path).expanduser().resolve().parent)
