"""Agencies: the public bodies that issue licences and hold electronic seals."""
