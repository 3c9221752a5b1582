"""Session-wide fixtures shared by the test suite: the test PKI, in memory and as PEM files."""

from __future__ import annotations

import pytest
from pki import PkiFiles, TestPKI, build_pki, write_ca_file, write_pem_files


@pytest.fixture(scope="session")
def pki() -> TestPKI:
    """Root and intermediate CA, server leaves per key type, client leaves, broken leaves."""
    return build_pki()


@pytest.fixture(scope="session")
def pki_files(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    directory = tmp_path_factory.mktemp("pki")
    leaves = [
        *pki.servers.values(),
        *pki.clients.values(),
        pki.expired,
        pki.wrong_name,
        pki.untrusted,
    ]
    return PkiFiles(
        directory=directory,
        root_ca=write_ca_file(directory, "root-ca", pki.root.certificate),
        unrelated_root_ca=write_ca_file(
            directory, "unrelated-root-ca", pki.unrelated_root.certificate
        ),
        leaves={leaf.name: write_pem_files(directory, leaf) for leaf in leaves},
    )
