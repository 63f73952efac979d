"""Following up that the rules are kept, for the responsible person (ansvarig för behandlingen) and managers,
without reading content: data-subject requests by a keyed hash of personnummer (`identifiers`,
`subject_requests`), recorded log reviews (`log_reviews`), documentation before deletion (`before_deletion`).

The top layer of the core: imports the assistant, transcripts, recordings, users, the platform and the kernel.
"""
