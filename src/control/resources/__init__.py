"""Falcon resources of the control API: small classes whose ``on_get``/``on_post`` call the
engine's service layer. Each declares ``actions`` (method -> ``control.auth.Action``) or
``public = True``, and ``docs`` (method -> ``control.openapi.Op``)."""
