"""Campaigns: the domain model, its lifecycle state machine, schedule arithmetic and the service
the control API and the engine call. Durable state lives in ``dispatch.store``."""
