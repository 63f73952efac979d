"""The documentation assistant's domain logic: the transcript as the model sees it, templates, prompts,
grounding checks, summaries (map-reduce for long transcripts) and the review gate. No ML imports: the model
is reached through appliance/llm_client.py."""
