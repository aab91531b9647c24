CREATE TABLE "client_live_progress" (
	"client_id" uuid PRIMARY KEY NOT NULL,
	"run_id" uuid,
	"progress" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "client_live_progress" ADD CONSTRAINT "client_live_progress_client_id_clients_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("id") ON DELETE cascade ON UPDATE no action;