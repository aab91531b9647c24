CREATE TABLE "replica_objects" (
	"sha256" "bytea" NOT NULL,
	"kind" text NOT NULL,
	"bytes" bigint NOT NULL,
	"replicated_at" timestamp with time zone,
	"failed_at" timestamp with time zone,
	"checked_at" timestamp with time zone DEFAULT now() NOT NULL,
	"primary_gone_at" timestamp with time zone,
	CONSTRAINT "replica_objects_sha256_kind_pk" PRIMARY KEY("sha256","kind")
);
--> statement-breakpoint
ALTER TABLE "verify_runs" ADD COLUMN "packs_repaired" integer DEFAULT 0 NOT NULL;