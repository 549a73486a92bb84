"""Licences: types, issuance, lifecycle and renditions (document, seal, PDF, QR)."""
