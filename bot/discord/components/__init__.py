"""Components on the messages that carry papers: "Pick a paper…", the paper panel, Next papers.

`ids` names what every component's custom id holds (ids only, never state), `layout` builds the
components of a posted message, `items` turns clicks into calls on the services. Nothing is kept
in memory: after a restart, the dynamic items registered at start answer every old message.
"""
