"""eCH-0020 schemas of the population register: the official files, the mechanical derivation,
the strict schema preferred if present, and what a delivery is refused for (line, element)."""

from __future__ import annotations

import difflib
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from connectors.population_register.delivery import read_delivery
from connectors.population_register.schema import (
    NAMESPACES,
    STRICT_FILE,
    XSD_DIR,
    load_schema,
    schema_file,
)
from connectors.population_register.xsd.derive import DERIVED, F_VARIANT, derive
from connectors.sdk import SourceInputError

DATA = Path(__file__).parent / "data" / "ech0020"
VALID = sorted(DATA.glob("*.xml"))


def test_the_committed_derived_schema_is_the_derivation_of_the_official_f_variant() -> None:
    derived = derive(F_VARIANT.read_text(encoding="utf-8"))
    assert derived.encode("utf-8") == DERIVED.read_bytes()


def test_the_derivation_changes_only_the_namespace_and_import_lines() -> None:
    official = F_VARIANT.read_text(encoding="utf-8").splitlines()
    derived = DERIVED.read_text(encoding="utf-8").splitlines()
    assert len(official) == len(derived)
    changed = [(a, b) for a, b in zip(official, derived, strict=True) if a != b]
    # line 5 is <xs:schema ...> (prefix declarations, target namespace), then the 8 imports
    assert len(changed) == 9
    assert changed[0][0].lstrip().startswith("<xs:schema ")
    assert 'targetNamespace="http://www.ech.ch/xmlns/eCH-0020/3"' in changed[0][1]
    assert "-f/" not in changed[0][1]
    for before, after in changed[1:]:
        assert before.lstrip().startswith("<xs:import ") and after.lstrip().startswith(
            "<xs:import "
        )
        assert 'schemaLocation="official/' in after and "-f/" not in after
    diff = list(difflib.ndiff(official, derived))
    assert sum(1 for line in diff if line.startswith("- ")) == 9


@pytest.mark.parametrize("path", sorted((XSD_DIR / "official").glob("*.xsd")), ids=lambda p: p.name)
def test_each_official_file_is_well_formed_xml_schema(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2001/XMLSchema}schema"
    namespace = root.get("targetNamespace")
    assert namespace is not None
    if "-f/" not in namespace:  # every strict import is mapped to its file
        assert NAMESPACES[namespace] == path.name


def test_the_derived_schema_loads_with_every_import_resolved() -> None:
    schema = load_schema()
    assert schema.validity == "valid" and not schema.all_errors
    assert schema.target_namespace == "http://www.ech.ch/xmlns/eCH-0020/3"
    assert set(NAMESPACES) <= set(schema.maps.namespaces)
    # strict imports: a person identification needs its local id, names, sex, date of birth
    identification: Any = schema.maps.types[
        "{http://www.ech.ch/xmlns/eCH-0044/4}personIdentificationType"
    ]
    required = {e.local_name for e in identification.content.iter_elements() if e.min_occurs}
    assert required == {"localPersonId", "officialName", "firstName", "sex", "dateOfBirth"}


def test_a_strict_schema_in_the_folder_is_preferred(tmp_path: Path) -> None:
    shutil.copy(DERIVED, tmp_path / DERIVED.name)
    assert schema_file(tmp_path) == tmp_path / DERIVED.name
    stand_in = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'targetNamespace="http://www.ech.ch/xmlns/eCH-0020/3" elementFormDefault="qualified">'
        '<xs:element name="delivery"/></xs:schema>'
    )
    (tmp_path / STRICT_FILE).write_text(stand_in)
    assert schema_file(tmp_path) == tmp_path / STRICT_FILE
    loaded = load_schema(tmp_path)
    assert isinstance(loaded, xmlschema.XMLSchema)
    assert list(loaded.elements) == ["delivery"]
    assert schema_file() == XSD_DIR / "eCH-0020-3-0-derived.xsd"  # the repository has none


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_the_fixtures_are_valid_deliveries(path: Path) -> None:
    assert load_schema().is_valid(str(path))
    delivery = read_delivery(path)
    assert delivery.message_id.startswith("so-ewr-2025-")
    assert len(delivery.events) == 1


def _bad(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name.removesuffix(".bad")
    shutil.copy(DATA / name, target)
    return target


def test_malformed_xml_names_file_line_and_reason(tmp_path: Path) -> None:
    with pytest.raises(SourceInputError) as refused:
        read_delivery(_bad(tmp_path, "malformed.xml.bad"))
    # the mismatched end tag is on line 28 of the file (officialName of the deathPerson)
    text = (DATA / "malformed.xml.bad").read_text().splitlines()
    assert "</eCH-0044:officialNam>" in text[27]
    assert "malformed.xml line 28" in str(refused.value)
    assert "mismatched tag" in str(refused.value)
    assert "nothing of this delivery was applied" in str(refused.value)


def test_schema_invalid_names_line_element_and_reason(tmp_path: Path) -> None:
    with pytest.raises(SourceInputError) as refused:
        read_delivery(_bad(tmp_path, "invalid-vn.xml.bad"))
    lines = (DATA / "invalid-vn.xml.bad").read_text().splitlines()
    vn_line = next(n for n, line in enumerate(lines, 1) if "<eCH-0044:vn>1234<" in line)
    message = str(refused.value)
    assert f"invalid-vn.xml line {vn_line}:" in message
    assert "eCH-0020:death/eCH-0020:deathPerson/eCH-0044:vn" in message
    assert "7560000000001" in message  # the reason: the vn range of eCH-0044


def test_what_ech_0020_requires_is_required_though_the_f_variant_allows_it(
    tmp_path: Path,
) -> None:
    path = _bad(tmp_path, "missing-death-date.xml.bad")
    assert load_schema().is_valid(str(path))  # the derived schema alone lets it through
    with pytest.raises(SourceInputError) as refused:
        read_delivery(path)
    lines = path.read_text().splitlines()
    death_line = next(n for n, line in enumerate(lines, 1) if "<eCH-0020:death>" in line)
    assert f"line {death_line}: element /eCH-0020:delivery/eCH-0020:death:" in str(refused.value)
    assert "eCH-0020:deathData is required" in str(refused.value)
