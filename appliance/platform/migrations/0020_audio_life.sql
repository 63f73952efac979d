-- Audio with its own, shorter life (appliance/recordings/audio_life.py, [retention] audio_shred).

-- When the transcript first became final (the clock of audio_shred = hours_after_final). Recordings already
-- transcribed count from their creation: that errs toward shredding earlier, never later.
ALTER TABLE recordings ADD COLUMN transcribed_at REAL;
UPDATE recordings SET transcribed_at = created_at WHERE status = 'ready';

-- When and why the audio was shredded ahead of the text (its blob deleted, its DEK overwritten with an empty
-- value); the text stays until the purge.
ALTER TABLE recordings ADD COLUMN audio_shredded_at REAL;
ALTER TABLE recordings ADD COLUMN audio_shred_reason TEXT;

-- Erasures whose key material may still linger in pages of the current database generation (old WAL frames,
-- flash remnants of overwritten pages): ids only ("recording:<id>" for a shredded audio key). The next re-key
-- (the shred timer's, an erasure's or the Friday purge's) puts those remnants under a destroyed key, names the
-- items in its receipt and clears them.
CREATE TABLE rekey_pending (
    item TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    since REAL NOT NULL
);
