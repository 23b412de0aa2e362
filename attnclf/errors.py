"""The one exception type that the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """A problem with the user's input (data, config, run folder) that they can fix."""


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM; the message says how to resume. The CLI exits 130."""
