"""Tables show what was recorded before control characters were refused without letting it
act on the terminal: escapes, bidi overrides and Rich markup are shown, not obeyed."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from nervenbahn.cli.render import shown


@pytest.mark.parametrize(("recorded", "printed"), [
    ("Zora\x1b[2J\x1b[31m", "Zora\\u001b[2J\\u001b[31m"),
    ("\u202eQuellmatt", "\\u202eQuellmatt"),
    ("\u200b", "\\u200b"),
    ("\u3164", "\\u3164"),
    ("[link=https://example.org]Zora[/link]", "[link=https://example.org]Zora[/link]"),
    ("Zoë O'Brien-Müller", "Zoë O'Brien-Müller"),
])
def test_a_table_cell_shows_the_text_without_obeying_it(recorded: str, printed: str) -> None:
    out = io.StringIO()
    table = Table(show_header=False)
    table.add_column()
    table.add_row(shown(recorded))

    Console(file=out, width=200, force_terminal=False).print(table)

    assert printed in out.getvalue()
    assert "\x1b" not in out.getvalue() and "\u202e" not in out.getvalue()
