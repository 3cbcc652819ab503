"""SBOMs from a synthetic filesystem tar stream: parsing, purls, determinism, validity."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from dockroll.sbom import (
    DebPackage,
    ImageSubject,
    OsRelease,
    copyright_licenses,
    cyclonedx_document,
    deb_purl,
    inventory,
    parse_metadata,
    parse_os_release,
    parse_status,
    pypi_purl,
    read_rootfs,
    render_document,
    wanted,
)
from tests.unit.sbom.rootfs import (
    DPKG_STATUS,
    FLASK_METADATA,
    LIBC_COPYRIGHT,
    OS_RELEASE,
    PROMETHEUS_METADATA,
    chunks,
    default_files,
    rootfs_tar,
)

IMAGE_ID = "sha256:" + "ab" * 32
DIGEST = "sha256:" + "cd" * 32
BOOKWORM = OsRelease(id="debian", version_id="12", pretty_name="Debian 12", codename="bookworm")


def subject(**overrides: object) -> ImageSubject:
    values: dict[str, object] = {
        "image_id": IMAGE_ID,
        "repository": "127.0.0.1:5000/acme/web",
        "version": "v1.2.3",
        "tag": "v1.2.3",
    }
    values.update(overrides)
    return ImageSubject(**values)  # type: ignore[arg-type]


# -- dpkg ------------------------------------------------------------------------


def test_status_keeps_installed_packages_in_file_order() -> None:
    packages = parse_status(DPKG_STATUS)
    assert [p.name for p in packages] == ["libc6", "login", "adduser"]


def test_status_multi_line_fields_and_source() -> None:
    libc, login, adduser = parse_status(DPKG_STATUS)
    assert libc == DebPackage(
        name="libc6",
        version="2.36-9+deb12u4",
        architecture="amd64",
        source="glibc",
        source_version=None,
        maintainer="GNU Libc Maintainers <debian-glibc@lists.debian.org>",
        homepage="https://www.gnu.org/software/libc/libc.html",
        summary="GNU C Library: Shared libraries",
    )
    # "Source: name (version)" carries the source version when the binary was rebuilt (+b1)
    assert (login.source, login.source_version) == ("shadow", "1:4.13+dfsg1-1")
    assert login.version == "1:4.13+dfsg1-1+b1"
    assert adduser.source is None
    assert adduser.architecture == "all"


@pytest.mark.parametrize(
    ("status", "installed"),
    [
        ("install ok installed", True),
        ("hold ok installed", True),
        ("install ok unpacked", True),
        ("deinstall ok config-files", False),
        ("deinstall ok installed", False),
        ("purge ok not-installed", False),
        ("install ok not-installed", False),
        ("install ok config-files", False),
    ],
)
def test_status_field(status: str, installed: bool) -> None:
    text = f"Package: p\nStatus: {status}\nVersion: 1\nArchitecture: amd64\n"
    assert bool(parse_status(text)) is installed


def test_stanza_without_status_is_installed_and_blank_lines_with_spaces_split() -> None:
    text = "Package: a\nVersion: 1\n \t\nPackage: b\nVersion: 2\nArchitecture: arm64\n"
    assert [(p.name, p.architecture) for p in parse_status(text)] == [
        ("a", "all"),
        ("b", "arm64"),
    ]


def test_stanza_without_version_is_skipped() -> None:
    assert parse_status("Package: broken\nStatus: install ok installed\n") == []


def test_os_release() -> None:
    release = parse_os_release(OS_RELEASE)
    assert release == OsRelease(
        id="debian",
        version_id="12",
        pretty_name="Debian GNU/Linux 12 (bookworm)",
        codename="bookworm",
    )
    assert release.distro == "debian-12"
    sid = parse_os_release("ID=debian\nVERSION_CODENAME=trixie\n")
    assert sid is not None
    assert sid.distro == "debian-trixie"
    assert parse_os_release("NAME=nothing\n") is None


def test_copyright_licenses_from_machine_readable_files_only() -> None:
    assert copyright_licenses(LIBC_COPYRIGHT) == ("GPL-2+", "LGPL-2.1+")
    assert copyright_licenses("Copyright 2020 someone, GPL-2 somewhere in prose\n") == ()


# -- Python metadata -------------------------------------------------------------------


def test_dist_info_metadata() -> None:
    flask = parse_metadata(FLASK_METADATA, "/opt/venv/x/METADATA")
    assert flask is not None
    assert (flask.name, flask.normalized_name, flask.version) == ("Flask", "flask", "3.1.3")
    assert flask.license is not None
    assert flask.license.expression == "BSD-3-Clause"
    assert flask.summary == "A simple framework for building complex web applications."
    assert flask.homepage == "https://github.com/pallets/flask/"


def test_multi_line_license_field_falls_back_to_classifiers() -> None:
    package = parse_metadata(PROMETHEUS_METADATA, "/m")
    assert package is not None
    assert package.normalized_name == "prometheus-client"
    assert package.license is not None
    assert package.license.names == ("Apache Software License",)


def test_metadata_without_name_or_version() -> None:
    assert parse_metadata("Metadata-Version: 2.1\nName: x\n", "/m") is None


# -- purl --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "arch"),
    [
        ("libc6", "2.36-9+deb12u4", "amd64"),
        ("login", "1:4.13+dfsg1-1+b1", "amd64"),
        ("libstdc++6", "12.2.0-14", "amd64"),
        ("adduser", "3.134", "all"),
    ],
)
def test_deb_purl_matches_the_reference_implementation(name: str, version: str, arch: str) -> None:
    ours = deb_purl(DebPackage(name=name, version=version, architecture=arch), BOOKWORM)
    reference = PackageURL(
        type="deb",
        namespace="debian",
        name=name,
        version=version,
        qualifiers={"arch": arch, "distro": "debian-12"},
    ).to_string()
    assert ours == reference
    assert PackageURL.from_string(ours).version == version


def test_deb_purl_shape() -> None:
    package = DebPackage(name="libc6", version="2.36-9+deb12u4", architecture="amd64")
    assert (
        deb_purl(package, BOOKWORM)
        == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Flask", "pkg:pypi/flask@3.1.3"),
        ("prometheus_client", "pkg:pypi/prometheus-client@3.1.3"),
        ("zope.interface", "pkg:pypi/zope-interface@3.1.3"),
        ("Foo__Bar", "pkg:pypi/foo-bar@3.1.3"),
    ],
)
def test_pypi_purl_uses_the_normalised_name(name: str, expected: str) -> None:
    assert pypi_purl(name, "3.1.3") == expected


def test_pypi_purl_encodes_local_versions() -> None:
    assert pypi_purl("torch", "2.3.0+cpu") == "pkg:pypi/torch@2.3.0%2Bcpu"


# -- the tar stream ------------------------------------------------------------------


def test_wanted_paths() -> None:
    assert wanted("var/lib/dpkg/status")
    assert wanted("var/lib/dpkg/status.d/base")
    assert not wanted("var/lib/dpkg/status.d/base.md5sums")
    assert not wanted("var/lib/dpkg/status-old")
    assert wanted("usr/lib/python3.11/site-packages/a-1.dist-info/METADATA")
    assert wanted("usr/local/lib/python3.12/site-packages/a-1.dist-info/METADATA")
    assert wanted("opt/app/.venv/lib/python3.11/site-packages/a-1.dist-info/METADATA")
    assert wanted("usr/lib/python3/dist-packages/a-1.egg-info/PKG-INFO")
    assert not wanted("usr/lib/python3.11/site-packages/a-1.dist-info/RECORD")
    assert not wanted("home/me/lib/python3.11/site-packages/a-1.dist-info/METADATA")
    assert wanted("usr/share/doc/libc6/copyright")


def test_read_rootfs_reads_only_what_it_needs_and_follows_symlinks() -> None:
    files = read_rootfs(chunks(rootfs_tar()))
    assert "usr/share/big.bin" not in files.files
    assert "var/lib/dpkg/status-old" not in files.files
    assert files.read("etc/os-release") == OS_RELEASE.encode()
    assert files.resolve("etc/os-release") == "usr/lib/os-release"


def test_members_named_with_a_dot_slash_and_hard_links() -> None:
    venv = "opt/venv/lib/python3.11/site-packages"
    data = rootfs_tar(
        {
            "usr/lib/os-release": OS_RELEASE,
            f"{venv}/flask-3.1.3.dist-info/METADATA": FLASK_METADATA,
        },
        hardlinks={
            f"{venv}/other/flask-3.1.3.dist-info/METADATA": (
                f"{venv}/flask-3.1.3.dist-info/METADATA"
            )
        },
        prefix="./",
    )
    found = inventory(read_rootfs(chunks(data)))
    assert found.os_release is not None
    [(flask, locations)] = found.python_packages
    assert flask.version == "3.1.3"
    assert len(locations) == 2


def test_symlinked_doc_directory_resolves_the_copyright_file() -> None:
    data = rootfs_tar(
        {
            "var/lib/dpkg/status": "Package: libc-bin\nVersion: 2.36\nArchitecture: amd64\n",
            "usr/share/doc/libc6/copyright": LIBC_COPYRIGHT,
        },
        symlinks={"usr/share/doc/libc-bin": "libc6"},
    )
    found = inventory(read_rootfs(chunks(data)))
    [(package, licenses, _)] = found.deb_packages
    assert package.name == "libc-bin"
    assert licenses == ("GPL-2+", "LGPL-2.1+")


def test_not_a_tar_stream() -> None:
    with pytest.raises(tarfile.TarError):
        read_rootfs(chunks(b"this is not a tar archive" * 40))


def test_inventory_of_the_synthetic_image() -> None:
    found = inventory(read_rootfs(chunks(rootfs_tar())))
    assert found.os_release is not None
    assert found.os_release.distro == "debian-12"
    debs = [(p.name, licenses, locations) for p, licenses, locations in found.deb_packages]
    assert debs == [
        ("adduser", (), ("/var/lib/dpkg/status",)),
        ("libc6", ("GPL-2+", "LGPL-2.1+"), ("/var/lib/dpkg/status",)),
        ("login", (), ("/var/lib/dpkg/status",)),
        ("tzdata", (), ("/var/lib/dpkg/status.d/tzdata",)),
    ]
    pythons = [(p.normalized_name, p.version, locs) for p, locs in found.python_packages]
    assert pythons == [
        (
            "flask",
            "3.1.3",
            (
                "/opt/venv/lib/python3.11/site-packages/flask-3.1.3.dist-info/METADATA",
                "/usr/local/lib/python3.11/site-packages/Flask-3.1.3.dist-info/METADATA",
            ),
        ),
        (
            "gunicorn",
            "27.0.1",
            ("/opt/venv/lib/python3.11/site-packages/gunicorn-27.0.1.dist-info/METADATA",),
        ),
        (
            "prometheus-client",
            "0.26.0",
            ("/opt/venv/lib/python3.11/site-packages/prometheus_client-0.26.0.dist-info/METADATA",),
        ),
        ("six", "1.16.0", ("/usr/lib/python3/dist-packages/six-1.16.0.egg-info",)),
    ]


# -- the CycloneDX document ------------------------------------------------------------


def _document(**overrides: object) -> dict[str, object]:
    found = inventory(read_rootfs(chunks(rootfs_tar())))
    return cyclonedx_document(subject(**overrides), found)


def test_document_is_valid_cyclonedx_1_5() -> None:
    content = render_document(_document(digest=DIGEST)).decode()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(content) is None


def test_document_describes_the_image_and_its_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    document = json.loads(render_document(_document(digest=DIGEST)))
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"] == "1.5"
    assert document["serialNumber"].startswith("urn:uuid:")
    assert document["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    [tool] = document["metadata"]["tools"]["components"]
    assert tool["name"] == "dockroll"
    image = document["metadata"]["component"]
    assert image["type"] == "container"
    assert image["name"] == "127.0.0.1:5000/acme/web"
    assert image["version"] == "v1.2.3"
    assert image["bom-ref"] == IMAGE_ID
    assert image["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert PackageURL.from_string(image["purl"]).version == DIGEST

    by_purl = {c.get("purl"): c for c in document["components"]}
    libc = by_purl["pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"]
    assert libc["licenses"] == [{"license": {"name": "GPL-2+"}}, {"license": {"name": "LGPL-2.1+"}}]
    flask = by_purl["pkg:pypi/flask@3.1.3"]
    assert flask["licenses"] == [{"expression": "BSD-3-Clause"}]
    assert len(flask["evidence"]["occurrences"]) == 2
    assert by_purl["pkg:pypi/gunicorn@27.0.1"]["licenses"] == [{"license": {"name": "MIT"}}]
    assert (
        "licenses"
        not in by_purl["pkg:deb/debian/login@1:4.13%2Bdfsg1-1%2Bb1?arch=amd64&distro=debian-12"]
    )
    [os_component] = [c for c in document["components"] if c["type"] == "operating-system"]
    assert (os_component["name"], os_component["version"]) == ("debian", "12")
    refs = {c["bom-ref"] for c in document["components"]}
    assert len(refs) == len(document["components"])
    for dependency in document["dependencies"]:
        assert set(dependency["dependsOn"]) <= refs


def test_component_order_is_deterministic_os_then_deb_then_python() -> None:
    kinds = [(c["type"], c.get("purl", "").split("/", 1)[0]) for c in _document()["components"]]
    assert kinds[0] == ("operating-system", "")
    types = [purl for _, purl in kinds[1:]]
    assert types == sorted(types)  # every pkg:deb before every pkg:pypi
    names = [c["name"] for c in _document()["components"]]
    assert names == [c["name"] for c in _document()["components"]]


def test_same_image_and_source_date_epoch_give_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = render_document(_document())
    # a different member order in the tar must not change the document
    shuffled = dict(reversed(list(default_files().items())))
    found = inventory(read_rootfs(chunks(rootfs_tar(shuffled), size=1000)))
    second = render_document(cyclonedx_document(subject(), found))
    assert first == second


def test_without_source_date_epoch_each_document_is_new(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    when = datetime(2024, 5, 1, tzinfo=UTC)
    found = inventory(read_rootfs(chunks(rootfs_tar())))
    a = cyclonedx_document(subject(), found, timestamp=when)
    b = cyclonedx_document(subject(), found, timestamp=when)
    assert a["serialNumber"] != b["serialNumber"]
    assert a["metadata"]["timestamp"] == "2024-05-01T00:00:00Z"
    assert a["components"] == b["components"]


def test_image_without_os_release_or_packages_is_still_valid() -> None:
    found = inventory(read_rootfs(chunks(rootfs_tar({"app/main": "x"}, symlinks={}))))
    document = cyclonedx_document(subject(), found)
    assert document["components"] == []
    content = render_document(document).decode()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(content) is None
