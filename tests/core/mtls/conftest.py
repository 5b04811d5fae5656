from __future__ import annotations

import pytest
import trustme

from tests.core.mtls.support import Pki, der_of


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("client.example", "client@example.org")
    other = intermediate.issue_cert("other.example")
    leaf_pem, intermediate_pem = (blob.bytes() for blob in leaf.cert_chain_pems)
    return Pki(
        leaf_der=der_of(leaf_pem),
        intermediate_der=der_of(intermediate_pem),
        root_der=der_of(root.cert_pem.bytes()),
        other_leaf_der=der_of(other.cert_chain_pems[0].bytes()),
    )
