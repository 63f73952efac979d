"""What was said, as text: line edits with history (`edits`), speakers and their names (`speakers`), full-text
search (`search`), the social-services lexicon and correction suggestions (`lexicon`, `suggestions`) and the
pseudonymization of personal data (`pseudonymize`).

Imports recordings, users, the platform and the kernel; the assistant imports it.
"""
