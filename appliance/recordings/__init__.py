"""Recordings and their audio: upload, list, play, delete, rename, move (`recordings`), decoding and upload
validation (`audio`), folders and sharing (`folders`), live recording from the browser or a desk microphone
(`live`, `desk`) and the reminders before the purge (`reminders`).

Imports users, the platform and the kernel; transcripts and the assistant import it.
"""
