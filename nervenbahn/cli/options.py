"""Options several commands share: the applicant's identifying data (`case open`,
`benefits receive`), validated by the domain's commands, not here."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = [
    "AhvNumber",
    "BirthDate",
    "FamilyName",
    "GivenName",
    "PostalCode",
    "Street",
    "Town",
    "applicant_input",
]

GivenName = Annotated[str, typer.Option(help="Applicant's given name.")]
FamilyName = Annotated[str, typer.Option(help="Applicant's family name.")]
AhvNumber = Annotated[str, typer.Option(help="Applicant's AHV number 756.XXXX.XXXX.XC.")]
BirthDate = Annotated[str, typer.Option(help="Applicant's birth date YYYY-MM-DD.")]
Street = Annotated[str, typer.Option(help="Street and number.")]
PostalCode = Annotated[str, typer.Option(help="Postal code.")]
Town = Annotated[str, typer.Option(help="Town.")]


def applicant_input(
    given_name: str, family_name: str, ahvn13: str, birth_date: str, street: str,
    postal_code: str, town: str,
) -> dict[str, str]:
    """The applicant as a command's `applicant` field takes it (`domain.commands.PersonInput`)."""
    return {"given_name": given_name, "family_name": family_name, "ahvn13": ahvn13,
            "birth_date": birth_date, "street": street, "postal_code": postal_code,
            "town": town}
