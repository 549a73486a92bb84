"""People and businesses: identifiers, accounts, representation, authenticators."""
