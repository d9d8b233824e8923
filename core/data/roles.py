"""Data roles: what each data set is for, and which kind of rows it expects."""

from dataclasses import dataclass

from unlearn_studio.core.errors import UserError

#: Row kinds. "qa": question/answer pairs; "text": plain documents; "mcq": multiple choice.
KINDS = {
    "qa": "question/answer pairs",
    "text": "plain text documents",
    "mcq": "multiple-choice questions (question, choices, label)",
}


@dataclass(frozen=True)
class Role:
    """One role a data set can play in a run."""

    name: str
    description: str
    kinds: tuple[str, ...]  # accepted row kinds, in order of preference


ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role("forget", "the knowledge or data to remove from the model", ("qa", "text")),
        Role("retain", "knowledge the model must keep while forgetting", ("qa", "text")),
        Role("holdout", "examples never trained on (non-members for membership tests)", ("qa", "text")),
        Role("general", "general text the model keeps (utility and perplexity)", ("text",)),
        Role("expert", "instruction/response pairs showing the wanted behaviour (Ext-Sub's expert)", ("qa",)),
        Role("anti-expert", "instruction/response pairs showing the deficiency to remove (Ext-Sub)", ("qa",)),
        Role("harmful", "harmful questions with harmful answers (SKU's target)", ("qa",)),
        Role("normal", "ordinary questions with normal answers (kept by SKU)", ("qa",)),
        Role("mcq", "multiple-choice questions for concept tests", ("mcq",)),
    )
}


def get_role(name: str) -> Role:
    """The role called ``name``; a UserError listing the known roles otherwise."""
    try:
        return ROLES[name]
    except KeyError:
        raise UserError(
            f"Unknown data role '{name}'.",
            f"Use one of: {', '.join(ROLES)}.",
        ) from None
