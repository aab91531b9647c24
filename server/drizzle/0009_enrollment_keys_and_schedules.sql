CREATE TABLE "enrollment_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"key_hash" text NOT NULL,
	"key_prefix" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"owner_id" uuid NOT NULL,
	"created_by" uuid,
	"single_use" boolean NOT NULL,
	"expires_at" timestamp with time zone,
	"name_prefix" text,
	"use_count" integer DEFAULT 0 NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "clients" ADD COLUMN "schedule_cron" text;--> statement-breakpoint
ALTER TABLE "clients" ADD COLUMN "schedule_time_zone" text DEFAULT 'UTC' NOT NULL;--> statement-breakpoint
ALTER TABLE "clients" ADD COLUMN "backup_window_start" text;--> statement-breakpoint
ALTER TABLE "clients" ADD COLUMN "backup_window_end" text;--> statement-breakpoint
ALTER TABLE "enrollment_keys" ADD CONSTRAINT "enrollment_keys_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "enrollment_keys" ADD CONSTRAINT "enrollment_keys_created_by_users_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "enrollment_keys_hash_uq" ON "enrollment_keys" USING btree ("key_hash");--> statement-breakpoint
CREATE INDEX "enrollment_keys_owner_idx" ON "enrollment_keys" USING btree ("owner_id","created_at");