"""The only package that speaks to Discord: the client, slash commands, message sending."""
