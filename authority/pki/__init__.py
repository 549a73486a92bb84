"""Key custody and the authority's own PKI: key stores, certificates, CRL, OCSP, TSA."""
