"""Population register (Einwohnerregister) source: eCH-0020 event deliveries → work-list
proposals (handover, closure) on the open cases of the persons concerned.

Status: the person index (`matcher`) is in place; the delivery parser waits for the official
eCH-0020 v3 XSD (see `xsd/SOURCES.md`): no schema is invented here.
"""

from connectors.population_register.matcher import CaseMatch, PersonIndex

__all__ = ["CaseMatch", "PersonIndex"]
