CREATE TABLE "packs" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "packs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"sha256" "bytea" NOT NULL,
	"bytes" bigint NOT NULL,
	"chunk_count" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp with time zone,
	CONSTRAINT "packs_sha256_unique" UNIQUE("sha256")
);
--> statement-breakpoint
ALTER TABLE "chunks" ADD COLUMN "pack_id" integer;--> statement-breakpoint
ALTER TABLE "chunks" ADD COLUMN "pack_offset" bigint;--> statement-breakpoint
ALTER TABLE "chunks" ADD COLUMN "stored_length" integer;--> statement-breakpoint
ALTER TABLE "chunks" ADD COLUMN "codec" smallint;--> statement-breakpoint
ALTER TABLE "chunks" ADD COLUMN "damaged_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "contents" ADD COLUMN "damaged_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "chunks" ADD CONSTRAINT "chunks_pack_id_packs_id_fk" FOREIGN KEY ("pack_id") REFERENCES "public"."packs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "chunks_pack_idx" ON "chunks" USING btree ("pack_id");