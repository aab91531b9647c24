CREATE TABLE "verify_findings" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"run_id" integer NOT NULL,
	"chunk_sha256" "bytea" NOT NULL,
	"object_key" text NOT NULL,
	"problem" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "verify_runs" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "verify_runs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"trigger" text NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	"packs_planned" integer DEFAULT 0 NOT NULL,
	"packs_checked" integer DEFAULT 0 NOT NULL,
	"objects_checked" integer DEFAULT 0 NOT NULL,
	"chunks_checked" integer DEFAULT 0 NOT NULL,
	"bytes_read" bigint DEFAULT 0 NOT NULL,
	"damaged_chunks" integer DEFAULT 0 NOT NULL,
	"error" text
);
--> statement-breakpoint
ALTER TABLE "packs" ADD COLUMN "verified_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "verify_findings" ADD CONSTRAINT "verify_findings_run_id_verify_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."verify_runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "verify_findings_run_idx" ON "verify_findings" USING btree ("run_id");--> statement-breakpoint
CREATE INDEX "chunks_damaged_idx" ON "chunks" USING btree ("damaged_at") WHERE "chunks"."damaged_at" is not null;--> statement-breakpoint
CREATE INDEX "chunks_v1_idx" ON "chunks" USING btree ("sha256") WHERE "chunks"."pack_id" is null;--> statement-breakpoint
CREATE INDEX "contents_damaged_idx" ON "contents" USING btree ("damaged_at") WHERE "contents"."damaged_at" is not null;