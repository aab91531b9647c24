ALTER TABLE "users" ADD COLUMN "alert_email" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "alert_email_types" jsonb DEFAULT '[]'::jsonb NOT NULL;