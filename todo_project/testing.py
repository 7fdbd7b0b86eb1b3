"""Test-only helpers that settings.py refers to while running under pytest."""

from django.contrib.auth.hashers import Argon2PasswordHasher


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2 with a tiny cost, so tests that create many users stay fast."""

    time_cost = 1
    memory_cost = 64
    parallelism = 1
