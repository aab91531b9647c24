DROP INDEX "client_logs_client_at_idx";--> statement-breakpoint
CREATE INDEX "client_logs_client_received_idx" ON "client_logs" USING btree ("client_id","received_at","id");