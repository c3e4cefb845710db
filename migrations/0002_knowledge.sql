-- 0002_knowledge: pgvector for the knowledge read model, and the embedding cache.
--
-- The extension is created once per database here (it needs a superuser or the database owner,
-- like every migration); its type lives in public, which the runtime roles may use. The knowledge
-- projection's generations create their own tables with vector columns.
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;

-- Embeddings by (embedder, sha256 of the text), shared by every projection generation so that a
-- rebuild (or the same passage in two documents) does not pay for an embedding twice. It holds no
-- tenant data a projector could not already read (only vectors keyed by hashes), and only the
-- projector role, which writes for every tenant anyway, may use it.
CREATE TABLE public.embedding_cache (
	embedder    text        NOT NULL,
	text_sha256 bytea       NOT NULL,
	embedding   vector      NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (embedder, text_sha256)
);
COMMENT ON TABLE public.embedding_cache IS
	'Embeddings by embedder and sha256 of the embedded text; a cache, safe to truncate.';
GRANT SELECT, INSERT ON public.embedding_cache TO metachat_projector;
