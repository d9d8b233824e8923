"""The one exception type for bad input that the user can fix."""


class UserError(Exception):
    """Bad input: says what is wrong (``problem``) and what to do about it (``fix``).

    The CLI prints it and exits 2; the GUI shows it in its error dialog. Raise it before anything
    is written, so that a bad input never leaves a half-written project or store behind.
    """

    def __init__(self, problem: str, fix: str):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\n  What to do: {fix}")
