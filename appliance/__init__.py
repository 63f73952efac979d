"""Samtalsstöd core domain. No Flask, no ML library, none of the other top-level packages.

The tree shows the order; every import points down (import-linter `layers` contract in pyproject.toml):

    assistant/    the documentation assistant
    transcripts/  edits, speakers, search, lexicon, suggestions, pseudonymization
    recordings/   recordings, audio, folders, live and desk recording, reminders
    users/        accounts, access, api tokens, invitations, guidelines
    platform/     db + migrations, keys, blobstore, audit, jobs, context, retention
    kernel        errors, clock, config, ports, ids (the modules at this level)

`data/` holds the shipped word lists and guidelines (files only).
"""
