"""The HTTP kit every wire format stands on: dependencies (container, principal), the one set
of error handlers (each wire format supplies only its error body), uploads, body limits and
framing, streaming, signed links, the image type vocabulary (``imageType``), and the
declaration a dialect makes to be mounted.

Entry points (``api/`` for the native ``/v1`` API, ``dialects/<vendor>/``) import this package;
it imports neither of them.
"""
