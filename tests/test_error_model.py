"""One error model: every exception class of our packages derives from `NervenbahnError`, so
an entrypoint can tell our foreseeable failures from everything else with one `except`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from domain.errors import DomainError, NervenbahnError

PACKAGES = ("domain", "bus", "projections", "connectors", "schemas", "nervenbahn")


def _modules() -> list[str]:
    names: list[str] = []
    for root in PACKAGES:
        package = importlib.import_module(root)
        names.append(root)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, f"{root}.")]
    return [name for name in names if not name.endswith("__main__")]  # runs the CLI


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == name:
                found.append(cls)
    return found


def test_every_exception_class_of_ours_derives_from_the_project_root() -> None:
    classes = _exception_classes()
    outside = [f"{cls.__module__}.{cls.__qualname__}" for cls in classes
               if not issubclass(cls, NervenbahnError)]
    assert len(classes) > 40  # the walk found the packages' errors
    assert outside == []


def test_every_exception_class_of_ours_says_what_happened() -> None:
    undocumented = [f"{cls.__module__}.{cls.__qualname__}" for cls in _exception_classes()
                    if not (cls.__doc__ or "").strip()]
    assert undocumented == []


def test_each_package_has_one_root_directly_under_the_project_root() -> None:
    roots: dict[str, set[str]] = {}
    for cls in _exception_classes():
        if NervenbahnError in cls.__bases__:
            roots.setdefault(cls.__module__.split(".")[0], set()).add(cls.__name__)
    assert roots["domain"] == {"DomainError"}
    assert roots["bus"] == {"BusError"}
    assert roots["projections"] == {"ProjectionError"}
    assert roots["connectors"] == {"ConnectorError"}
    assert roots["schemas"] == {"SchemasError"}
    assert roots["nervenbahn"] >= {"ApiError", "AuditError", "ConfigError",
                                   "StoreUnavailableError"}
    assert issubclass(DomainError, NervenbahnError)
