"""Population register (Einwohnerregister) source: eCH-0020 event deliveries → work-list
proposals (handover, closure) on the open cases of the persons concerned.

`RegisterSource` (in `source`) reads an inbox of deliveries, validated against the eCH-0020 v3
schema (`schema`, sources and derivation in `xsd/SOURCES.md`); `delivery` parses one file;
`matcher` finds the open cases of a person. Register it in the connectors file as
`class = "connectors.population_register:RegisterSource"` with option `inbox`.
"""

from connectors.population_register.matcher import CaseMatch, PersonIndex
from connectors.population_register.source import RegisterSource

__all__ = ["CaseMatch", "PersonIndex", "RegisterSource"]
