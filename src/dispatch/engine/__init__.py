"""The engine: one trio loop that builds campaigns, schedules them onto SMPP pools, records
outcomes and receipts, and serves the control API. ``dispatch.engine.core.Engine`` is the root.
"""
