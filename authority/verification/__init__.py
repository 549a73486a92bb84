"""Verification of presented licences: QR seals, document + seal pairs and sealed PDFs.

Online (against the register and the PKI's live status) and offline (against
a sealed trust list alone), one report shape, in the terms of ETSI EN 319 102-1.
"""
