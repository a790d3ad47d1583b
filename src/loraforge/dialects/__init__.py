"""Vendor wire formats over the core: each dialect translates, the services decide.

A dialect is ``dialects/<vendor>/{router.py, schemas.py, translate.py}``: it builds its app with
the HTTP kit (``http.dialect.sub_app``, ``http.errors.install_error_handlers`` with its error
body) and declares itself as ``DIALECT`` in its package, which ``loraforge.app`` mounts.
Dialects never import each other, nor the native API.
"""
