"""The fields of the monthly delivery: name, which record carries it, what it means, where the
definition comes from. `FIELDS.md` is the readable form of this catalogue (a test keeps both in
step)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COLUMNS", "FIELDS", "SOURCES", "Field"]

SOURCES: dict[str, str] = {
    "bfs-modern": "BFS, Sozialhilfestatistik gemäss modernisierter Methode (monthly delivery of "
    "basic data on persons and dossiers plus booking data, since April 2024): "
    "https://www.bfs.admin.ch/bfs/de/home/statistiken/soziale-sicherheit/erhebungen/shs/"
    "modernisierte-methode.html",
    "bfs-faq": "BFS, SHS FAQ «Abschluss eines Falles bei einem Wohngemeindewechsel» (a move to "
    "another municipality closes the dossier and opens a new one; 6-month rule): "
    "http://www.bfs.admin.ch/bfs/portal/de/index/infothek/erhebungen__quellen/blank/blank/ssh/"
    "faq.html",
    "sg-2022": "Schweizer Gemeinde 12/2022, «Sozialhilfestatistik wird moderner und digitaler» "
    "(20 basic data items on persons and dossiers via sedex; the rest from the client "
    "accounts as a booking table): https://www.schweizer-gemeinde.ch/artikel/"
    "sozialhilfestatistik-wird-moderner-und-digitaler",
    "gecko": "Gecko Software, help page «Sozialstatistik» of a case-management product "
    "delivering to the SHS (Dossier-Nr., Gemeindecode = BFS number of the supporting "
    "municipality, Beendigungsgrund): https://geckosoftware.ch/HelpFiles/"
    "hlp_sostatModernisiert.htm",
    "nervenbahn": "nervenbahn's own definition (modelled; no official counterpart confirmed)",
}
"""Where the definitions come from (keys used by `Field.source`)."""


@dataclass(frozen=True)
class Field:
    """One column of the delivery."""

    name: str
    records: str
    """"dossier", "booking" or "both"."""
    definition: str
    source: str
    """A key of `SOURCES`."""
    official: str = ""
    """The corresponding official notion, in the BFS's words, where one is known."""


FIELDS: tuple[Field, ...] = (
    Field("record", "both", "`dossier` (basic fields of a dossier) or `booking` (an amount).",
          "nervenbahn"),
    Field("reporting_month", "both", "The month delivered, YYYY-MM.", "bfs-modern",
          "monatliche Lieferung"),
    Field("dossier_id", "both",
          "The case pseudonym (HMAC-SHA256 of the case id under the reporting key, hex): the "
          "same for every month and every dossier of the case; never the case id.",
          "gecko", "Dossier-Nr."),
    Field("dossier_seq", "both",
          "The dossier's number within the case: 1, then +1 at each handover (a move to "
          "another municipality closes the dossier and opens a new one).",
          "bfs-faq", "neues Dossier bei Wohngemeindewechsel"),
    Field("canton", "both", "The canton's abbreviation (option `canton`, default SO).",
          "bfs-modern"),
    Field("municipality_bfs", "dossier",
          "BFS number of the municipality the dossier belongs to (the case's municipality, or "
          "the one it was handed over to).", "gecko", "Gemeindecode (Unterstützungsgemeinde)"),
    Field("status", "dossier",
          "`new`: the current spell of support began in the month; `closed`: it ended in the "
          "month (closure or handover); `ongoing`: otherwise.", "nervenbahn",
          "Zustand (Anfang, Stichtag)"),
    Field("support_start", "dossier",
          "First day of the current spell of support in this dossier (support_from of the "
          "grant, or the handover day for a later dossier).", "bfs-modern",
          "Beginn der Unterstützung"),
    Field("support_end", "dossier",
          "Last supported day if the spell ended in the month, else empty (administrative "
          "closure; the BFS sets its statistical closure six months after the last regular "
          "payment from the bookings).", "bfs-faq", "Abschlussdatum"),
    Field("end_reason", "dossier",
          "Why the spell ended: employment, other_insurance, moved_away, death, other (the "
          "core's closure reasons) or municipality_change (handover).", "gecko",
          "Beendigungsgrund"),
    Field("household_size", "dossier",
          "Persons in the supported household on the last supported day of the month.",
          "bfs-modern", "Grösse der Unterstützungseinheit"),
    Field("booking_month", "booking", "The month the amount is for, YYYY-MM.", "sg-2022",
          "Buchungstabelle"),
    Field("booking_kind", "booking",
          "`regular`: support owed for the reporting month; `correction`: the change of an "
          "earlier, already delivered month's amount (back-payment positive, claim-back "
          "negative).", "nervenbahn"),
    Field("amount_chf", "booking",
          "CHF, two decimals: what the dossier is owed for booking_month by the budget and "
          "support periods (domain.entitlement: pro rata by calendar days, negative budgets owe "
          "nothing, rounded once), or the correction.", "sg-2022", "Klientenbuchhaltung"),
)
"""Every column, in file order."""

COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)
"""The CSV header."""
