CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"actor_user_id" uuid,
	"actor_name" text NOT NULL,
	"action" text NOT NULL,
	"target_type" text NOT NULL,
	"target_id" text,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "backup_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"client_id" uuid NOT NULL,
	"trigger" text DEFAULT 'schedule' NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	"files_scanned" integer DEFAULT 0 NOT NULL,
	"files_changed" integer DEFAULT 0 NOT NULL,
	"files_deleted" integer DEFAULT 0 NOT NULL,
	"files_failed" integer DEFAULT 0 NOT NULL,
	"bytes_scanned" bigint DEFAULT 0 NOT NULL,
	"bytes_uploaded" bigint DEFAULT 0 NOT NULL,
	"bytes_new" bigint DEFAULT 0 NOT NULL,
	"pre_commands" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"error" text
);
--> statement-breakpoint
CREATE TABLE "chunks" (
	"sha256" text PRIMARY KEY NOT NULL,
	"size" bigint NOT NULL,
	"storage_key" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"touched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "client_logs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"client_id" uuid NOT NULL,
	"run_id" uuid,
	"at" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"level" text NOT NULL,
	"message" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "clients" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"owner_id" uuid NOT NULL,
	"name" text NOT NULL,
	"hostname" text DEFAULT '' NOT NULL,
	"token_hash" text,
	"token_prefix" text,
	"monitored_paths" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"excludes" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"pre_commands" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"backup_interval_seconds" integer DEFAULT 3600 NOT NULL,
	"ping_interval_seconds" integer DEFAULT 300 NOT NULL,
	"retention_versions" integer,
	"retention_days" integer,
	"run_requested_at" timestamp with time zone,
	"last_ping_at" timestamp with time zone,
	"last_backup_at" timestamp with time zone,
	"agent_version" text,
	"agent_state" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "content_chunks" (
	"content_sha256" text NOT NULL,
	"seq" integer NOT NULL,
	"chunk_sha256" text NOT NULL,
	"offset" bigint NOT NULL,
	CONSTRAINT "content_chunks_content_sha256_seq_pk" PRIMARY KEY("content_sha256","seq")
);
--> statement-breakpoint
CREATE TABLE "contents" (
	"sha256" text PRIMARY KEY NOT NULL,
	"size" bigint NOT NULL,
	"chunk_count" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"touched_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "file_versions" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"client_id" uuid NOT NULL,
	"path" text NOT NULL,
	"kind" text DEFAULT 'file' NOT NULL,
	"content_sha256" text,
	"size" bigint NOT NULL,
	"mtime_ms" bigint NOT NULL,
	"mode" integer NOT NULL,
	"link_target" text,
	"run_id" uuid,
	"valid_from" timestamp with time zone NOT NULL,
	"valid_to" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "owner_contents" (
	"user_id" uuid NOT NULL,
	"content_sha256" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "owner_contents_user_id_content_sha256_pk" PRIMARY KEY("user_id","content_sha256")
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"username" text NOT NULL,
	"password_hash" text NOT NULL,
	"is_admin" boolean DEFAULT false NOT NULL,
	"disabled" boolean DEFAULT false NOT NULL,
	"retention_versions" integer DEFAULT 30 NOT NULL,
	"retention_days" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "users_username_unique" UNIQUE("username")
);
--> statement-breakpoint
ALTER TABLE "audit_log" ADD CONSTRAINT "audit_log_actor_user_id_users_id_fk" FOREIGN KEY ("actor_user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "backup_runs" ADD CONSTRAINT "backup_runs_client_id_clients_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "client_logs" ADD CONSTRAINT "client_logs_client_id_clients_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "clients" ADD CONSTRAINT "clients_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "content_chunks" ADD CONSTRAINT "content_chunks_content_sha256_contents_sha256_fk" FOREIGN KEY ("content_sha256") REFERENCES "public"."contents"("sha256") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "content_chunks" ADD CONSTRAINT "content_chunks_chunk_sha256_chunks_sha256_fk" FOREIGN KEY ("chunk_sha256") REFERENCES "public"."chunks"("sha256") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "file_versions" ADD CONSTRAINT "file_versions_client_id_clients_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "file_versions" ADD CONSTRAINT "file_versions_content_sha256_contents_sha256_fk" FOREIGN KEY ("content_sha256") REFERENCES "public"."contents"("sha256") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "file_versions" ADD CONSTRAINT "file_versions_run_id_backup_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."backup_runs"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "owner_contents" ADD CONSTRAINT "owner_contents_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "owner_contents" ADD CONSTRAINT "owner_contents_content_sha256_contents_sha256_fk" FOREIGN KEY ("content_sha256") REFERENCES "public"."contents"("sha256") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "audit_log_at_idx" ON "audit_log" USING btree ("at");--> statement-breakpoint
CREATE INDEX "backup_runs_client_started_idx" ON "backup_runs" USING btree ("client_id","started_at");--> statement-breakpoint
CREATE INDEX "client_logs_client_at_idx" ON "client_logs" USING btree ("client_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "clients_owner_name_uq" ON "clients" USING btree ("owner_id","name");--> statement-breakpoint
CREATE UNIQUE INDEX "clients_token_hash_uq" ON "clients" USING btree ("token_hash");--> statement-breakpoint
CREATE INDEX "content_chunks_chunk_idx" ON "content_chunks" USING btree ("chunk_sha256");--> statement-breakpoint
CREATE UNIQUE INDEX "file_versions_current_uq" ON "file_versions" USING btree ("client_id","path") WHERE "file_versions"."valid_to" is null;--> statement-breakpoint
CREATE INDEX "file_versions_client_path_from_idx" ON "file_versions" USING btree ("client_id","path","valid_from");--> statement-breakpoint
CREATE INDEX "file_versions_content_idx" ON "file_versions" USING btree ("content_sha256");--> statement-breakpoint
CREATE INDEX "owner_contents_content_idx" ON "owner_contents" USING btree ("content_sha256");