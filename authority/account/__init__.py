"""A person's own view of Authority: their licences, authenticators and data history."""
