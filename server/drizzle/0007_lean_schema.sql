-- The lean metadata schema (docs/decisions.md 90-93), converting existing data in place:
-- hashes become their 32 bytes (bytea), each path is stored once per client (client_paths)
-- and versions refer to it, a one-chunk content is its chunk row alone (no contents and no
-- content_chunks row), and columns and indexes no query uses go. Hand-written around drizzle-kit's diff, which cannot
-- convert data; the snapshot in meta/ is drizzle-kit's.
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM "chunks" WHERE "storage_key" <> "sha256") THEN
    RAISE EXCEPTION 'chunks.storage_key differs from the hash for some rows; this release cannot convert them';
  END IF;
END $$;
--> statement-breakpoint
CREATE TABLE "client_paths" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"client_id" uuid NOT NULL,
	"path" text NOT NULL
);
--> statement-breakpoint
INSERT INTO "client_paths" ("client_id", "path")
  SELECT DISTINCT "client_id", "path" FROM "file_versions" ORDER BY "client_id", "path";
--> statement-breakpoint
ALTER TABLE "file_versions" ADD COLUMN "path_id" bigint;
--> statement-breakpoint
UPDATE "file_versions" fv SET "path_id" = cp."id"
  FROM "client_paths" cp WHERE cp."client_id" = fv."client_id" AND cp."path" = fv."path";
--> statement-breakpoint
ALTER TABLE "file_versions" ALTER COLUMN "path_id" SET NOT NULL;
--> statement-breakpoint
DELETE FROM "content_chunks" cc USING "contents" c
  WHERE cc."content_sha256" = c."sha256" AND c."chunk_count" = 1 AND cc."seq" = 0 AND cc."chunk_sha256" = c."sha256";
--> statement-breakpoint
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM "contents" c WHERE c."chunk_count" = 1 AND NOT EXISTS (SELECT 1 FROM "chunks" ch WHERE ch."sha256" = c."sha256")) THEN
    RAISE EXCEPTION 'a one-chunk content has no chunk of its own hash; this release cannot convert it';
  END IF;
END $$;
--> statement-breakpoint
ALTER TABLE "file_versions" DROP CONSTRAINT "file_versions_client_id_clients_id_fk";--> statement-breakpoint
ALTER TABLE "file_versions" DROP CONSTRAINT "file_versions_run_id_backup_runs_id_fk";--> statement-breakpoint
ALTER TABLE "file_versions" DROP CONSTRAINT "file_versions_content_sha256_contents_sha256_fk";--> statement-breakpoint
ALTER TABLE "content_chunks" DROP CONSTRAINT "content_chunks_content_sha256_contents_sha256_fk";--> statement-breakpoint
ALTER TABLE "content_chunks" DROP CONSTRAINT "content_chunks_chunk_sha256_chunks_sha256_fk";--> statement-breakpoint
ALTER TABLE "owner_contents" DROP CONSTRAINT "owner_contents_content_sha256_contents_sha256_fk";--> statement-breakpoint
-- A one-chunk content's row is its chunk's (decision 91); the chunk keeps the later of the two touches.
UPDATE "chunks" ch SET "touched_at" = greatest(ch."touched_at", c."touched_at") FROM "contents" c WHERE c."sha256" = ch."sha256" AND c."chunk_count" = 1;--> statement-breakpoint
DELETE FROM "contents" WHERE "chunk_count" = 1;--> statement-breakpoint
DROP INDEX "file_versions_client_path_from_idx";--> statement-breakpoint
DROP INDEX "owner_contents_content_idx";--> statement-breakpoint
DROP INDEX "file_versions_current_uq";--> statement-breakpoint
DROP INDEX "file_versions_content_idx";--> statement-breakpoint
ALTER TABLE "owner_contents" DROP CONSTRAINT "owner_contents_user_id_content_sha256_pk";--> statement-breakpoint
ALTER TABLE "chunks" DROP COLUMN "storage_key";--> statement-breakpoint
ALTER TABLE "chunks" DROP COLUMN "created_at";--> statement-breakpoint
ALTER TABLE "contents" DROP COLUMN "created_at";--> statement-breakpoint
ALTER TABLE "file_versions" DROP COLUMN "client_id";--> statement-breakpoint
ALTER TABLE "file_versions" DROP COLUMN "path";--> statement-breakpoint
ALTER TABLE "file_versions" DROP COLUMN "run_id";--> statement-breakpoint
ALTER TABLE "owner_contents" DROP COLUMN "created_at";--> statement-breakpoint
ALTER TABLE "chunks" ALTER COLUMN "sha256" SET DATA TYPE bytea USING decode("sha256", 'hex');--> statement-breakpoint
ALTER TABLE "contents" ALTER COLUMN "sha256" SET DATA TYPE bytea USING decode("sha256", 'hex');--> statement-breakpoint
ALTER TABLE "content_chunks" ALTER COLUMN "content_sha256" SET DATA TYPE bytea USING decode("content_sha256", 'hex');--> statement-breakpoint
ALTER TABLE "content_chunks" ALTER COLUMN "chunk_sha256" SET DATA TYPE bytea USING decode("chunk_sha256", 'hex');--> statement-breakpoint
ALTER TABLE "file_versions" ALTER COLUMN "content_sha256" SET DATA TYPE bytea USING decode("content_sha256", 'hex');--> statement-breakpoint
ALTER TABLE "owner_contents" ALTER COLUMN "content_sha256" SET DATA TYPE bytea USING decode("content_sha256", 'hex');--> statement-breakpoint
ALTER TABLE "owner_contents" ADD CONSTRAINT "owner_contents_content_sha256_user_id_pk" PRIMARY KEY("content_sha256","user_id");--> statement-breakpoint
ALTER TABLE "content_chunks" ADD CONSTRAINT "content_chunks_content_sha256_contents_sha256_fk" FOREIGN KEY ("content_sha256") REFERENCES "public"."contents"("sha256") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "content_chunks" ADD CONSTRAINT "content_chunks_chunk_sha256_chunks_sha256_fk" FOREIGN KEY ("chunk_sha256") REFERENCES "public"."chunks"("sha256") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "client_paths" ADD CONSTRAINT "client_paths_client_id_clients_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "client_paths_client_path_uq" ON "client_paths" USING btree ("client_id","path");--> statement-breakpoint
ALTER TABLE "file_versions" ADD CONSTRAINT "file_versions_path_id_client_paths_id_fk" FOREIGN KEY ("path_id") REFERENCES "public"."client_paths"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "file_versions_path_from_idx" ON "file_versions" USING btree ("path_id","valid_from");--> statement-breakpoint
CREATE UNIQUE INDEX "file_versions_current_uq" ON "file_versions" USING btree ("path_id") WHERE "file_versions"."valid_to" is null;--> statement-breakpoint
CREATE INDEX "file_versions_content_idx" ON "file_versions" USING btree ("content_sha256") WHERE "file_versions"."content_sha256" is not null;
