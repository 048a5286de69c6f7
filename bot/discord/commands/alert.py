"""/alert: a person's own DM alerts."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.discord.client import Services, reply
from bot.discord.commands._common import (
    added_sentence,
    caller,
    counted,
    pace,
    papers_block,
    upvote_floor,
    when,
)
from bot.discord.commands.digest import timezone_autocomplete
from bot.discord.commands.watch import MODE_CHOICES, describe_watch
from bot.discord.embeds import code_span
from bot.services.feedback import MAX_PER_DAY, RecommendStatus


def recommend_sentence(status: RecommendStatus) -> str:
    """What the "recommended for you" digest does for this person now."""
    if not status.on:
        return "Recommendations are off. `/alert recommend on` turns them on."
    per_day = f"up to {counted(status.per_day, 'paper')} a day, in your DM digest"
    if status.needed:
        return (
            f"Recommendations are on ({per_day}), but they need {status.needed} more liked or "
            f"saved {'paper' if status.needed == 1 else 'papers'} (you have {status.positives}); "
            "nothing is sent until then. `/paper save` adds one."
        )
    learnt = counted(status.positives, "paper")
    return f"Recommendations are on: {per_day}, learnt from {learnt} you liked or saved."


class AlertCommands(app_commands.Group):
    def __init__(self, services: Services) -> None:
        super().__init__(name="alert", description="Your personal paper alerts, sent by DM")
        self.services = services

    recommend = app_commands.Group(
        name="recommend", description="Papers recommended for you from what you liked and saved, by DM"
    )

    async def _alert_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        choices = await self.services.alerts.alert_choices(interaction.user.id, current)
        return [app_commands.Choice(name=label, value=alert_id) for alert_id, label in choices]

    @app_commands.command(name="add", description="Get papers matching a query by DM")
    @app_commands.describe(
        query='What to look for, e.g. "knowledge distillation" OR distill*',
        mode="digest (default, at your schedule) or instant",
        min_upvotes="Only papers with at least this many Hugging Face upvotes",
    )
    @app_commands.choices(mode=MODE_CHOICES)
    async def add(
        self,
        interaction: discord.Interaction,
        query: app_commands.Range[str, 1, 1000],
        mode: app_commands.Choice[str] | None = None,
        min_upvotes: app_commands.Range[int, 0, 1_000_000] | None = None,
    ) -> None:
        pace(self.services, interaction)
        added = await self.services.alerts.add_alert(
            caller(interaction), query=query, mode=mode.value if mode else None, min_upvotes=min_upvotes
        )
        view = added.watch
        timing = "in your DM digest" if view.mode == "digest" else "by DM as soon as papers appear"
        where = f"{timing}{upvote_floor(view.min_upvotes)}"
        text = added_sentence(f"Alert #{view.id}", view.query, where, len(added.recent))
        if added.recent:
            text += "\n" + papers_block(added.recent, len(added.recent), limit=5)
        if view.paused:
            text += "\n⏸ Your alerts are paused because your DMs were closed; `/alert resume` restarts them."
        await reply(interaction, text)

    @app_commands.command(name="list", description="Your DM alerts")
    async def list(self, interaction: discord.Interaction) -> None:
        pace(self.services, interaction, lookup=True)
        views = await self.services.alerts.list_alerts(interaction.user.id)
        recommending = await self.services.feedback.recommend_status(interaction.user.id)
        if not views:
            lines = ["You have no alerts. Add one with `/alert add`."]
        else:
            lines = [f"**Your {len(views)} alerts**"] + [describe_watch(v) for v in views]
            reason = views[0].paused_reason
            if reason:
                lines.append(f"⏸ Paused: {reason}. Open your DMs, then `/alert resume`.")
        lines.append(recommend_sentence(recommending))
        await reply(interaction, "\n".join(lines))

    @app_commands.command(name="remove", description="Remove one of your alerts")
    @app_commands.describe(alert="The alert id shown by /alert list")
    async def remove(self, interaction: discord.Interaction, alert: int) -> None:
        pace(self.services, interaction)
        view = await self.services.alerts.remove_alert(interaction.user.id, alert)
        await reply(interaction, f"Removed alert #{view.id} {code_span(view.query)}.")

    remove.autocomplete("alert")(_alert_autocomplete)

    @app_commands.command(name="schedule", description="When your DM digest arrives")
    @app_commands.describe(
        time="Time of day, HH:MM (24-hour)",
        timezone="IANA timezone, e.g. Europe/Paris",
        days="Weekdays, e.g. mon-fri or mon,wed,fri (default: every day)",
    )
    @app_commands.autocomplete(timezone=timezone_autocomplete)
    async def schedule(
        self,
        interaction: discord.Interaction,
        time: app_commands.Range[str, 1, 10],
        timezone: app_commands.Range[str, 1, 64],
        days: app_commands.Range[str, 1, 60] | None = None,
    ) -> None:
        pace(self.services, interaction)
        info = await self.services.alerts.set_alert_schedule(
            interaction.user.id, time=time, timezone=timezone, days=days
        )
        await reply(interaction, f"Your DM digest: {info.schedule.describe()}; next {when(info.next_at)}.")

    @app_commands.command(name="resume", description="Resume your alerts after opening your DMs")
    async def resume(self, interaction: discord.Interaction) -> None:
        count = await self.services.alerts.resume_alerts(interaction.user.id)
        await reply(interaction, f"Resumed your {count} alerts." if count else "You have no alerts.")

    @recommend.command(name="on", description="Get papers recommended for you in your DM digest")
    @app_commands.describe(per_day=f"At most this many papers a day (1 to {MAX_PER_DAY}, default 5)")
    async def recommend_on(
        self, interaction: discord.Interaction, per_day: app_commands.Range[int, 1, MAX_PER_DAY] | None = None
    ) -> None:
        pace(self.services, interaction)
        status = await self.services.feedback.set_recommend(interaction.user.id, True, per_day)
        await reply(interaction, recommend_sentence(status))

    @recommend.command(name="off", description="Stop the papers recommended for you")
    async def recommend_off(self, interaction: discord.Interaction) -> None:
        pace(self.services, interaction)
        await self.services.feedback.set_recommend(interaction.user.id, False)
        await reply(interaction, "Recommendations are off; nothing more is recommended to you.")
