CREATE TABLE "restore_jobs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"source_client_id" uuid NOT NULL,
	"target_client_id" uuid NOT NULL,
	"as_of" timestamp with time zone NOT NULL,
	"paths" jsonb NOT NULL,
	"target_dir" text NOT NULL,
	"overwrite" boolean DEFAULT false NOT NULL,
	"post_command" text,
	"post_command_timeout_seconds" integer DEFAULT 600 NOT NULL,
	"schedule_id" uuid,
	"status" text DEFAULT 'queued' NOT NULL,
	"created_by_user_id" uuid,
	"created_by_name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"cancel_requested_at" timestamp with time zone,
	"progress" jsonb,
	"progress_at" timestamp with time zone,
	"result" jsonb,
	"error" text
);
--> statement-breakpoint
CREATE TABLE "restore_schedules" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"source_client_id" uuid NOT NULL,
	"target_client_id" uuid NOT NULL,
	"paths" jsonb NOT NULL,
	"target_dir" text NOT NULL,
	"overwrite" boolean DEFAULT false NOT NULL,
	"post_command" text,
	"post_command_timeout_seconds" integer DEFAULT 600 NOT NULL,
	"interval_seconds" integer DEFAULT 86400 NOT NULL,
	"cron" text,
	"time_zone" text DEFAULT 'UTC' NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"next_run_at" timestamp with time zone,
	"last_queued_at" timestamp with time zone,
	"created_by_user_id" uuid,
	"created_by_name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "restore_jobs" ADD CONSTRAINT "restore_jobs_source_client_id_clients_id_fk" FOREIGN KEY ("source_client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "restore_jobs" ADD CONSTRAINT "restore_jobs_target_client_id_clients_id_fk" FOREIGN KEY ("target_client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "restore_jobs" ADD CONSTRAINT "restore_jobs_schedule_id_restore_schedules_id_fk" FOREIGN KEY ("schedule_id") REFERENCES "public"."restore_schedules"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "restore_jobs" ADD CONSTRAINT "restore_jobs_created_by_user_id_users_id_fk" FOREIGN KEY ("created_by_user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "restore_schedules" ADD CONSTRAINT "restore_schedules_source_client_id_clients_id_fk" FOREIGN KEY ("source_client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "restore_schedules" ADD CONSTRAINT "restore_schedules_target_client_id_clients_id_fk" FOREIGN KEY ("target_client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "restore_schedules" ADD CONSTRAINT "restore_schedules_created_by_user_id_users_id_fk" FOREIGN KEY ("created_by_user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "restore_jobs_target_status_idx" ON "restore_jobs" USING btree ("target_client_id","status","created_at");--> statement-breakpoint
CREATE INDEX "restore_jobs_source_created_idx" ON "restore_jobs" USING btree ("source_client_id","created_at");--> statement-breakpoint
CREATE INDEX "restore_jobs_schedule_created_idx" ON "restore_jobs" USING btree ("schedule_id","created_at");--> statement-breakpoint
CREATE INDEX "restore_schedules_next_idx" ON "restore_schedules" USING btree ("next_run_at");--> statement-breakpoint
CREATE INDEX "restore_schedules_target_idx" ON "restore_schedules" USING btree ("target_client_id");