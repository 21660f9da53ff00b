"""The web process's HTTP interface: handlers by resource, thin around the domain (service/jobs/).

`service.api.app.create_app` builds the Starlette app; it never imports service/worker/.
"""
