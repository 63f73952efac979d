"""The documentation assistant: the transcript as the model sees it (`transcript`), templates, prompts,
grounding checks, summaries (map-reduce for long transcripts), chat, topics, case drafts and the review gate.
No ML imports: the model is reached through the `ChatModel` port (appliance/ports.py), implemented by the
OpenAI-compatible client in `llm_client`.

The top layer of the core: imports transcripts, recordings, users, the platform and the kernel.
"""
