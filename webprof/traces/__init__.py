"""Targeted traces: one precise question asked of one host's collector.

``models`` (traces, API tokens, the audit log), ``auth`` (who is asking:
session cookie or Bearer token), ``broker`` (the in-process link between
HTTP views and collector sockets), ``api`` (the JSON endpoints).
"""
