"""Seal formats: CAdES (CMS), PAdES (PDF) and the compact QR seal."""
