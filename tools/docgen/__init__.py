"""Reference pages generated from the code, so that they cannot drift from it.

``python -m tools.docgen cli`` writes ``docs/reference/cli.md`` (every command and option) and
``python -m tools.docgen api`` writes ``docs/reference/api.md`` (the public Python API) to
standard output; ``tests/test_docs_reference.py`` regenerates both and compares.
"""

from tools.docgen.api_reference import api_reference
from tools.docgen.cli_reference import cli_reference
from tools.docgen.commands import check_command_line, shell_commands

__all__ = ["PAGES", "api_reference", "check_command_line", "cli_reference", "shell_commands"]

# page name -> (generator, path in the repository)
PAGES = {
    "cli": (cli_reference, "docs/reference/cli.md"),
    "api": (api_reference, "docs/reference/api.md"),
}
