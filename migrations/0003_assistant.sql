-- 0003_assistant: citations on messages, for the assistant's replies.
--
-- New generations of the conversations projection create messages.citations themselves. This
-- brings generations created before it up to date in place: the column is nullable with no
-- default (a catalogue change, no rewrite), every message stored before this version has no
-- citations (only the assistant's replies carry them), so the table is exactly what a rebuild
-- would give — which is why this one change is made in place rather than by `metachat projections
-- rebuild conversations`. The public view of the active generation is replaced so that it shows
-- the new column (CREATE OR REPLACE VIEW may add columns at the end; its grants stay).
DO $$
DECLARE
	s text;
	active text;
BEGIN
	FOR s IN
		SELECT table_schema FROM information_schema.tables
		WHERE table_name = 'messages' AND table_schema LIKE 'rm\_conversations\_g%'
	LOOP
		EXECUTE format('ALTER TABLE %I.messages ADD COLUMN IF NOT EXISTS citations jsonb', s);
	END LOOP;
	SELECT 'rm_conversations_g' || generation INTO active
		FROM public.projection_generations WHERE projection = 'conversations' AND state = 'active';
	IF active IS NOT NULL AND EXISTS (SELECT 1 FROM information_schema.views
			WHERE table_schema = 'public' AND table_name = 'messages') THEN
		EXECUTE format('CREATE OR REPLACE VIEW public.messages WITH (security_invoker = true) AS SELECT * FROM %I.messages', active);
	END IF;
END
$$;
