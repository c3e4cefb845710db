-- 0004_batch_check: a check that fails a statement, for pipelined batches.
--
-- A projection runner sends a batch as one pipeline: BEGIN, the read model's statements, the
-- checkpoint update and COMMIT (projections/runner_pipeline.go). A condition found false on the
-- client after the pipeline ran would come too late, the COMMIT having run; so the statements
-- whose row counts matter check them in Postgres with this function, and a failed check raises,
-- which aborts the transaction before its COMMIT.
CREATE OR REPLACE FUNCTION public.metachat_check(ok boolean, message text) RETURNS void
	LANGUAGE plpgsql AS $$
BEGIN
	IF ok IS NOT TRUE THEN
		RAISE EXCEPTION '%', message USING ERRCODE = 'check_violation';
	END IF;
END
$$;
