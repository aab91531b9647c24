CREATE TABLE "pruned_version_spans" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"client_id" uuid NOT NULL,
	"path_id" bigint NOT NULL,
	"valid_from" timestamp with time zone NOT NULL,
	"valid_to" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "clients" ADD COLUMN "retention_rules" jsonb;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "retention_rules" jsonb DEFAULT '{"folders":[],"restorePoints":{"last":0,"hourly":0,"daily":0,"weekly":0,"monthly":0,"yearly":0}}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "pruned_version_spans" ADD CONSTRAINT "pruned_version_spans_client_id_clients_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pruned_version_spans" ADD CONSTRAINT "pruned_version_spans_path_id_client_paths_id_fk" FOREIGN KEY ("path_id") REFERENCES "public"."client_paths"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "pruned_version_spans_client_from_idx" ON "pruned_version_spans" USING btree ("client_id","valid_from");