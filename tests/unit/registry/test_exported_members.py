from __future__ import annotations

from dockroll import registry


def test_public_names_are_exported_from_the_package() -> None:
    exported = set(registry.__all__)
    assert len(exported) == len(registry.__all__)
    for name in exported:
        assert hasattr(registry, name), name
    public = {name for name in dir(registry) if not name.startswith("_")}
    # everything public in the package namespace is deliberately exported
    assert public - exported - {"annotations"} == set()
