ALTER TABLE "chunks" ADD COLUMN "base_sha256" "bytea";--> statement-breakpoint
CREATE INDEX "chunks_base_idx" ON "chunks" USING btree ("base_sha256") WHERE "chunks"."base_sha256" is not null;