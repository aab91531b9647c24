ALTER TABLE "backup_runs" ADD COLUMN "sample_raw_bytes" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "backup_runs" ADD COLUMN "sample_compressed_bytes" bigint DEFAULT 0 NOT NULL;