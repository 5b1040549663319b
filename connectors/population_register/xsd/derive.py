"""Derive `eCH-0020-3-0-derived.xsd` from the official f variant `official/eCH-0020-3-0f.xsd`.

The strict `eCH-0020-3-0.xsd` could not be obtained (see SOURCES.md). The f variant published by
eCH has the same element and type names, order and nesting, in namespace `eCH-0020-f/3`, with
every element optional and imports of the f variants of eCH-0007/0008/0010/0011/0021/0044.
This script changes exactly two things, mechanically, and nothing else:

1. the target namespace `http://www.ech.ch/xmlns/eCH-0020-f/3` becomes
   `http://www.ech.ch/xmlns/eCH-0020/3` (the namespace of real deliveries);
2. every import (and its namespace prefix declaration) of an f variant `eCH-NNNN-f/M` points at
   the strict standard of the same number and major version `eCH-NNNN/M`, and every
   `schemaLocation` at the strict official file in `official/` beside this script.

Run `python -m connectors.population_register.xsd.derive` to rewrite the derived file; the test
suite re-runs the derivation and compares it byte for byte with the committed file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

__all__ = ["DERIVED", "F_VARIANT", "STRICT_IMPORTS", "derive", "main"]

HERE = Path(__file__).resolve().parent
F_VARIANT = HERE / "official" / "eCH-0020-3-0f.xsd"
DERIVED = HERE / "eCH-0020-3-0-derived.xsd"

STRICT_IMPORTS: dict[str, tuple[str, str]] = {
    # standard number: (major version, strict official file in official/)
    "0006": ("2", "eCH-0006-2-0.xsd"),
    "0007": ("5", "eCH-0007-5-0.xsd"),
    "0008": ("3", "eCH-0008-3-0.xsd"),
    "0010": ("5", "eCH-0010-5-1.xsd"),
    "0011": ("8", "eCH-0011-8-1.xsd"),
    "0021": ("7", "eCH-0021-7-0.xsd"),
    "0044": ("4", "eCH-0044-4-1.xsd"),
    "0058": ("5", "eCH-0058-5-0.xsd"),
}
"""Every standard the f variant imports, with the strict file its import is pointed at."""

_ECH = "http://www.ech.ch/xmlns/"


def derive(f_variant: str) -> str:
    """The derived schema text of the f variant's text (the two mechanical changes only)."""
    text = f_variant.replace(f'{_ECH}eCH-0020-f/3"', f'{_ECH}eCH-0020/3"')
    for number, (major, file) in STRICT_IMPORTS.items():
        text = text.replace(f'{_ECH}eCH-{number}-f/{major}"', f'{_ECH}eCH-{number}/{major}"')
        text = re.sub(
            rf'schemaLocation="{re.escape(_ECH)}eCH-{number}(?:-f)?/{major}/[^"]+"',
            f'schemaLocation="official/{file}"',
            text,
        )
    return text


def main() -> int:
    """Write the derived schema beside this script."""
    derived = derive(F_VARIANT.read_text(encoding="utf-8"))
    DERIVED.write_text(derived, encoding="utf-8", newline="")
    print(f"wrote {DERIVED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
