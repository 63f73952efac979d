"""Domain exceptions. Each message is something a user or IT can act on."""


class ApplianceError(Exception):
    """Base class for errors whose message is safe to show (no personal data, no secrets)."""


class ConfigError(ApplianceError):
    pass


class KeyError_(ApplianceError):
    """Key material missing or wrong (named with a trailing underscore to not shadow the builtin)."""


class IntegrityError(ApplianceError):
    """Encrypted data failed authentication: tampered, truncated, reordered or spliced."""


class NotFound(ApplianceError):
    """The object does not exist *or* the actor may not see it (no existence leak)."""


class BadAudio(ApplianceError):
    """An upload is empty, corrupt, not audio, or too large."""


class AudioGone(ApplianceError):
    """A recording's audio was shredded ahead of its text (appliance/recordings/audio_life.py): nothing that
    needs the audio (playback, re-transcription) can be done; the transcript stays."""


class AuthError(ApplianceError):
    pass


class Throttled(AuthError):
    pass


class ModelError(ApplianceError):
    """A model is missing or its files do not match the manifest."""


class AsrUnavailable(ApplianceError):
    """The transcription server cannot be reached or its model is not ready, after retries. Transient: the job
    goes back to the queue (its attempt not counted) and nothing is lost."""


class AsrRejected(ApplianceError):
    """The transcription server refuses the request (an unsupported language, audio it will not take):
    retrying does not help, the job fails with this message."""
