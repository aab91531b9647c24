ALTER TABLE "file_versions" ADD COLUMN "uid" bigint;--> statement-breakpoint
ALTER TABLE "file_versions" ADD COLUMN "gid" bigint;--> statement-breakpoint
ALTER TABLE "file_versions" ADD COLUMN "hardlink_group" text;