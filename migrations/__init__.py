"""Alembic migrations, installed with the program as `bot.migrations`."""
