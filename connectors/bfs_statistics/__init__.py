"""Federal statistics sink: a monthly delivery modelled on the BFS social-assistance statistics
(Sozialhilfeempfängerstatistik, SHS), built only from the pseudonymised reporting topic.

See `FIELDS.md` (what each column means and where the definition comes from), `sink.py`
(when a month is complete, exactly-once files, corrections) and `builder.py` (facts → dossiers
and bookings, with `domain.entitlement` for the amounts).
"""

from connectors.bfs_statistics.builder import (
    BookingRow,
    CaseDossiers,
    Dossier,
    DossierRow,
    fold,
    month_rows,
    render_csv,
)
from connectors.bfs_statistics.catalogue import COLUMNS, FIELDS, SOURCES
from connectors.bfs_statistics.sink import BfsStatisticsSink

__all__ = [
    "COLUMNS",
    "FIELDS",
    "SOURCES",
    "BfsStatisticsSink",
    "BookingRow",
    "CaseDossiers",
    "Dossier",
    "DossierRow",
    "fold",
    "month_rows",
    "render_csv",
]
