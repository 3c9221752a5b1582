"""Fixtures for keystore tests: a throwaway CA, a leaf issuer, and the folder writer."""

from __future__ import annotations

import functools

import pytest
from cryptography import x509
from handshaker.keystore import devca
from handshaker.tls.signer import PrivateKey
from keystore_helpers import IssueLeaf, WriteCredential, make_leaf, write_credential


@pytest.fixture(scope="session")
def ca() -> tuple[x509.Certificate, PrivateKey]:
    return devca.create_ca()


@pytest.fixture(scope="session")
def issue_leaf(ca: tuple[x509.Certificate, PrivateKey]) -> IssueLeaf:
    return functools.partial(make_leaf, *ca)


@pytest.fixture
def write() -> WriteCredential:
    return write_credential
