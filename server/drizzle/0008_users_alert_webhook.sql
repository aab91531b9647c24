ALTER TABLE "users" ADD COLUMN "alert_webhook_url" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "alert_webhook_secret" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "alert_webhook_types" jsonb DEFAULT '[]'::jsonb NOT NULL;