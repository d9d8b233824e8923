"""The new-run wizard: model, method, data, review; it builds one RunConfig and saves it as a project file."""

from unlearn_studio.gui.wizard.wizard import NewRunWizard

__all__ = ["NewRunWizard"]
