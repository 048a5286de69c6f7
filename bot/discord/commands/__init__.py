"""Slash commands, one group per file; each only translates an interaction into a service call."""

from __future__ import annotations

from discord import app_commands

from bot.discord.client import Services
from bot.discord.commands.alert import AlertCommands
from bot.discord.commands.digest import DigestCommands
from bot.discord.commands.paper import PaperCommands, StatusCommands
from bot.discord.commands.watch import WatchCommands


def add_commands(tree: app_commands.CommandTree, services: Services) -> None:
    for group in (
        WatchCommands(services),
        AlertCommands(services),
        DigestCommands(services),
        PaperCommands(services),
        StatusCommands(services),
    ):
        tree.add_command(group)
