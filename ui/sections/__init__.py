"""The sections of the app's pages, one module per page: ``ui/sections/<page>.py`` holds the
small typed functions that ``pages/<page>.py`` calls in order, so that a page script reads as a
table of contents. Sections draw with the shared helpers in ``ui`` and ask ``o11y_data`` through
``ui.page.load``; only their page imports them.
"""
