"""`python -m nervenbahn …`: the same as the `nervenbahn` command."""

from nervenbahn.cli import console_main

console_main()
