-- The caseworker's "number of speakers" hint from the recording form (NULL: estimate the count).
ALTER TABLE recordings ADD COLUMN speakers_hint INTEGER CHECK (speakers_hint IS NULL OR speakers_hint BETWEEN 1 AND 10);
