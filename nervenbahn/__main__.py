"""`python -m nervenbahn …`: the same as the `nervenbahn` command."""

from nervenbahn.startup import main

main()
