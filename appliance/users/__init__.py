"""People and what they may do: accounts, passwords, TOTP, sessions and throttling (`accounts`), the one
authorization function for content (`access`), admin API tokens (`api_tokens`), one-time enrolment links
(`invitations`) and the usage guidelines every user accepts (`guidelines`).

Imports the platform and the kernel; recordings, transcripts and the assistant import it.
"""
