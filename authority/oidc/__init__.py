"""The OAuth 2.0 / OpenID Connect provider: clients, tokens, grants and endpoints.

Protocol logic comes from authlib's framework-free core (``authlib.oauth2``);
storage, keys and the HTTP adapter are ours.
"""
