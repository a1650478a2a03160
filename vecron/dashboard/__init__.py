"""The web dashboard and the visual job builder, served by the API's Starlette app.

Server-rendered pages (Jinja2) with htmx and Server-Sent Events, no front-end build:
:func:`vecron.dashboard.routes.routes` gives the routes under ``/ui`` that
:func:`vecron.webhook.app.create_app` mounts. See ``docs/dashboard.md``.
"""
