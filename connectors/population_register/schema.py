"""The eCH-0020 v3 schema deliveries are validated against (see `xsd/SOURCES.md`).

The strict official `xsd/eCH-0020-3-0.xsd` is used if it is there; otherwise the schema derived
mechanically from the official f variant, `xsd/eCH-0020-3-0-derived.xsd`. Either imports the
strict official files in `xsd/official/`; their own imports name http URLs, so the loader maps
every namespace to its local file and allows no network access.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import xmlschema

__all__ = ["DERIVED_FILE", "NAMESPACES", "STRICT_FILE", "XSD_DIR", "load_schema", "schema_file"]

XSD_DIR = Path(__file__).resolve().parent / "xsd"
STRICT_FILE = "eCH-0020-3-0.xsd"
DERIVED_FILE = "eCH-0020-3-0-derived.xsd"

NAMESPACES: dict[str, str] = {
    "http://www.ech.ch/xmlns/eCH-0006/2": "eCH-0006-2-0.xsd",
    "http://www.ech.ch/xmlns/eCH-0007/5": "eCH-0007-5-0.xsd",
    "http://www.ech.ch/xmlns/eCH-0008/3": "eCH-0008-3-0.xsd",
    "http://www.ech.ch/xmlns/eCH-0010/5": "eCH-0010-5-1.xsd",
    "http://www.ech.ch/xmlns/eCH-0011/8": "eCH-0011-8-1.xsd",
    "http://www.ech.ch/xmlns/eCH-0021/7": "eCH-0021-7-0.xsd",
    "http://www.ech.ch/xmlns/eCH-0044/4": "eCH-0044-4-1.xsd",
    "http://www.ech.ch/xmlns/eCH-0058/5": "eCH-0058-5-0.xsd",
    "http://www.ech.ch/xmlns/eCH-0135/1": "eCH-0135-1-0.xsd",
}
"""Each imported namespace and its strict official file in `xsd/official/`."""


def schema_file(folder: Path = XSD_DIR) -> Path:
    """The strict eCH-0020-3-0.xsd if the folder has it, else the derived schema."""
    strict = folder / STRICT_FILE
    return strict if strict.is_file() else folder / DERIVED_FILE


@lru_cache(maxsize=4)
def load_schema(folder: Path = XSD_DIR) -> xmlschema.XMLSchema:
    """The eCH-0020 v3 schema of the folder (loaded once per process and folder)."""
    official = XSD_DIR / "official"
    locations = [(ns, str(official / file)) for ns, file in NAMESPACES.items()]
    return xmlschema.XMLSchema(str(schema_file(folder)), locations=locations, allow="local")
