-- 0001_base: the runtime roles and the projection bookkeeping tables.
--
-- Everything here is created by, and owned by, the connecting migration user. The two runtime roles
-- own nothing, so row-level security always applies to them.

-- Roles are cluster-wide, and several databases on one server (tests, or several environments) may
-- run this file at the same moment: a concurrent CREATE ROLE fails with duplicate_object or
-- unique_violation, which only means that the role now exists.
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['metachat_app', 'metachat_projector'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
			BEGIN
				EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r);
			EXCEPTION WHEN duplicate_object OR unique_violation THEN
				NULL;
			END;
		END IF;
		-- A pre-existing role with more power than it should have is brought back in line.
		IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r
				AND (rolsuper OR rolbypassrls OR rolcanlogin OR rolcreatedb OR rolcreaterole OR rolreplication)) THEN
			EXECUTE format('ALTER ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r);
		END IF;
		-- The connecting user switches to the runtime roles with SET ROLE, which needs membership
		-- (a superuser is a member of every role already).
		IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
			BEGIN
				EXECUTE format('GRANT %I TO %I', r, current_user);
			EXCEPTION WHEN duplicate_object OR unique_violation THEN
				NULL;
			WHEN insufficient_privilege THEN
				RAISE WARNING 'metachat: % cannot be granted role %; grant it to the login that runs Metachat', current_user, r;
			END;
		END IF;
	END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO metachat_app, metachat_projector;

-- One row per generation of each projection. A generation lives in its own schema
-- rm_<projection>_g<generation>; the views in public point at the one active generation.
CREATE TABLE public.projection_generations (
	projection   text        NOT NULL CHECK (projection ~ '^[a-z][a-z0-9_]*$'),
	generation   integer     NOT NULL CHECK (generation >= 1),
	state        text        NOT NULL CHECK (state IN ('building', 'active', 'retired')),
	created_at   timestamptz NOT NULL DEFAULT now(),
	activated_at timestamptz,
	retired_at   timestamptz,
	-- dropped_at is set once the retired generation's schema and consumer are gone.
	dropped_at   timestamptz,
	PRIMARY KEY (projection, generation)
);
CREATE UNIQUE INDEX projection_generations_one_active
	ON public.projection_generations (projection) WHERE state = 'active';
COMMENT ON TABLE public.projection_generations IS
	'Generations of each projection (blue/green): building, active (exactly one) or retired.';

-- The checkpoint of each generation: the stream sequence of the last event applied, written in the
-- same transaction as the read-model changes. stopped_* describe a poison event that stopped it.
CREATE TABLE public.projection_checkpoints (
	projection text        NOT NULL,
	generation integer     NOT NULL,
	last_seq   bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
	updated_at timestamptz NOT NULL DEFAULT now(),
	stopped_at timestamptz,
	stop_error text,
	stop_seq   bigint,
	PRIMARY KEY (projection, generation),
	FOREIGN KEY (projection, generation)
		REFERENCES public.projection_generations (projection, generation) ON DELETE CASCADE
);
COMMENT ON TABLE public.projection_checkpoints IS
	'Stream sequence each projection generation has applied, and why it stopped if it did.';

-- The API reads both for health, lag and read-your-writes; projectors read the generations and
-- move their own checkpoint. Rows are created and deleted by the owner only.
GRANT SELECT ON public.projection_generations, public.projection_checkpoints TO metachat_app;
GRANT SELECT ON public.projection_generations TO metachat_projector;
GRANT SELECT, UPDATE ON public.projection_checkpoints TO metachat_projector;
