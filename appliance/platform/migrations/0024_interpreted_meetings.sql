-- Interpreted meetings (issue 16): a recording held through an interpreter names the other language spoken; its
-- transcript then carries the language of each line (NULL: the recording's language). Lines in the other
-- language are shown and searchable, marked, and kept out of what the assistant reads.
ALTER TABLE recordings ADD COLUMN interpreter_language TEXT;
ALTER TABLE segments ADD COLUMN language TEXT;
