CREATE TABLE "client_path_names" (
	"path_id" bigint PRIMARY KEY NOT NULL,
	"client_id" uuid NOT NULL,
	"name" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "client_paths" ADD COLUMN "deleted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "clients" ADD COLUMN "local_config" jsonb;--> statement-breakpoint
ALTER TABLE "clients" ADD COLUMN "local_config_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "clients" ADD COLUMN "search_indexed_path_id" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "client_path_names" ADD CONSTRAINT "client_path_names_path_id_client_paths_id_fk" FOREIGN KEY ("path_id") REFERENCES "public"."client_paths"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
-- Existing deletions: a path whose newest version is closed was deleted when that version stopped being current.
UPDATE "client_paths" p SET "deleted_at" = last."valid_to"
FROM (SELECT DISTINCT ON ("path_id") "path_id", "valid_to" FROM "file_versions" ORDER BY "path_id", "valid_from" DESC) last
WHERE last."path_id" = p."id" AND last."valid_to" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "client_paths_deleted_idx" ON "client_paths" USING btree ("client_id","deleted_at","id") WHERE "client_paths"."deleted_at" is not null;;--> statement-breakpoint
-- The file search's trigram index needs pg_trgm and btree_gin (both trusted since PostgreSQL 13: the database's
-- owner may create them). A database user that may not still gets a working server: the search then reads the
-- client's names without the index (decision 159), so none of these statements may fail the migration.
DO $$
BEGIN
  CREATE EXTENSION IF NOT EXISTS pg_trgm;
  CREATE EXTENSION IF NOT EXISTS btree_gin;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'pg_trgm or btree_gin cannot be created (%): the dashboard''s file search works without its index, slower on large clients', SQLERRM;
END $$;--> statement-breakpoint
DO $$
BEGIN
  IF (SELECT count(*) FROM pg_extension WHERE extname IN ('pg_trgm', 'btree_gin')) = 2 THEN
    CREATE INDEX IF NOT EXISTS "client_path_names_search_idx" ON "client_path_names" USING gin ("client_id", "name" gin_trgm_ops);
  END IF;
END $$;
