"""Targeted traces: one precise question asked of one host's collector.

``models`` (traces, API tokens, the audit log), ``broker`` (the in-process
link between HTTP views and collector sockets), ``api`` (the JSON endpoints).
Who is asking (session cookie or Bearer token) is ``webprof.auth``'s to say,
for these endpoints and the session pages alike.
"""
